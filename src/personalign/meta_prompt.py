"""MetaAlign's three-tier meta-prompt (PAD_SPEC section 5): System Info (what the provider requires and prefers),
User Info (the user's background and preferences, explicit or implicit), then the conversation.

The paper publishes no delimiters or special tokens, only a figure of the tiers. This rendering is ours: one
system message holding two labelled blocks,

    System Info: You are an AI assistant.
    User Info: I'm a zookeeper and passionate about animal behaviour.

before the conversation; for a chat template without a system role the blocks open the first user turn instead.
Where the tiers conflict, System Info wins (the priority MetaAlign is trained for).
"""

from dataclasses import dataclass, fields
from typing import Mapping

from jinja2 import TemplateError

from .errors import PersonalignError
from .preferences import Preference
from .prompts import Messages, as_messages

DEFAULT_SYSTEM_INFO = "You are an AI assistant."  # the paper's example System Info
SYSTEM_LABEL, USER_LABEL = "System Info: ", "User Info: "
RENDERING = (SYSTEM_LABEL, USER_LABEL, "\n", "\n\n")  # every string of our rendering (runs record its hash)
_SENTINEL = "\x1fpersonalign-system-role\x1f"  # shows whether a chat template renders a system message


@dataclass(frozen=True)
class MetaPrompt:
    system_info: str = DEFAULT_SYSTEM_INFO
    user_info: str = ""  # empty: no User Info block (the provider's defaults alone)

    def __post_init__(self):
        for tier in fields(self):
            value = getattr(self, tier.name)
            if not isinstance(value, str):
                raise PersonalignError(f"meta-prompt {tier.name} must be text, got {type(value).__name__}")
            object.__setattr__(self, tier.name, value.strip())
        if not self.system_info:
            raise PersonalignError("meta-prompt system_info is empty: say what the provider requires, e.g. "
                                   f"{DEFAULT_SYSTEM_INFO!r}")

    @classmethod
    def from_preference(cls, preference: "str | Preference", system_info: str = DEFAULT_SYSTEM_INFO) -> "MetaPrompt":
        """A preference as User Info: its text, or for a weighted mix each dimension's text with its weight."""
        pref = Preference.parse(preference)
        if pref.is_empty:
            return cls(system_info)
        if len(pref.components) == 1:
            return cls(system_info, pref.text)
        return cls(system_info, " ".join(f"{text} (weight {weight:.2f})" for text, weight in pref.components))

    @classmethod
    def from_mapping(cls, tiers: Mapping, where: str = "meta-prompt") -> "MetaPrompt":
        """{"system_info": ..., "user_info": ...} as read from JSON lines; an unknown tier is an error."""
        known = [f.name for f in fields(cls)]
        if not isinstance(tiers, Mapping):
            raise PersonalignError(f"{where}: give the tiers as an object with {' and/or '.join(known)}")
        unknown = sorted(set(tiers) - set(known))
        if unknown:
            raise PersonalignError(f"{where}: unknown tier {unknown[0]!r}; the tiers are {', '.join(known)}")
        return cls(**tiers)

    @property
    def system_text(self) -> str:
        """The two labelled blocks, as one system message carries them."""
        blocks = [SYSTEM_LABEL + self.system_info]
        if self.user_info:
            blocks.append(USER_LABEL + self.user_info)
        return "\n".join(blocks)

    def messages(self, prompt: "str | Messages", system_role: bool = True) -> Messages:
        """The conversation under this meta-prompt. The conversation's own system messages are the provider's
        word too: they join System Info, after it. Without a system role, the blocks open the first user turn."""
        turns = as_messages(prompt)
        own = [m["content"].strip() for m in turns if m["role"] == "system" and m["content"].strip()]
        turns = [m for m in turns if m["role"] != "system"]
        text = MetaPrompt(" ".join([self.system_info, *own]), self.user_info).system_text
        if system_role:
            return [{"role": "system", "content": text}, *turns]
        first = next(i for i, m in enumerate(turns) if m["role"] == "user")
        turns[first] = {**turns[first], "content": f"{text}\n\n{turns[first]['content']}"}
        return turns


def meta_prompt_row(tokenizer, request, principle: str | None = None) -> list[int]:
    """Renderer (decoding/methods.py): the request under a meta-prompt of its System Info (default
    DEFAULT_SYSTEM_INFO) and its preference as User Info."""
    meta = MetaPrompt.from_preference(request.preference, request.system_info or DEFAULT_SYSTEM_INFO)
    return render_meta_ids(tokenizer, request.prompt, meta)


def system_info_row(tokenizer, request, principle: str | None = None) -> list[int]:
    """Renderer: the request under its System Info alone, without User Info (what metaalign-cfg measures the
    User Info's pull against)."""
    return render_meta_ids(tokenizer, request.prompt, MetaPrompt(request.system_info or DEFAULT_SYSTEM_INFO))


def render_meta_ids(tokenizer, prompt: "str | Messages", meta: MetaPrompt) -> list[int]:
    """Token ids of the chat-formatted conversation under the meta-prompt, ready for the answer."""
    if not getattr(tokenizer, "chat_template", None):  # a model without a chat template reads plain text
        text = "\n".join(m["content"] for m in meta.messages(prompt, system_role=False))
        return tokenizer(text)["input_ids"]
    messages = meta.messages(prompt, system_role=has_system_role(tokenizer))
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def has_system_role(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders a system message (some raise, some drop it silently)."""
    probe = [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
    try:
        return _SENTINEL in tokenizer.apply_chat_template(probe, tokenize=False)
    except TemplateError:  # a template's raise_exception("System role not supported")
        return False
