"""Rendering a user prompt (and optionally a preference) into the token ids the models read.

PAD's released prompt puts the preference into the user turn, inside the base model's chat template:
"[Guidelines] Your task is to generate response by considering the following principle. [Principles] {p}
[Instruction] {x}". Base model and PersRM read the same ids.
"""

from .errors import PersonalignError

PAD_PRINCIPLE_TEMPLATE = (
    "[Guidelines] Your task is to generate response by considering the following principle. "
    "[Principles] {principle} [Instruction] {instruction}"
)

Messages = list[dict]


def pad_user_turn(instruction: str, principle: str | None) -> str:
    """The user turn for `instruction` under `principle`; the bare instruction when there is no principle."""
    if principle is None:
        return instruction
    return PAD_PRINCIPLE_TEMPLATE.format(principle=principle, instruction=instruction)


def as_messages(prompt: "str | Messages") -> Messages:
    """A prompt as chat messages, validated: a non-empty string, or messages ending with a user turn."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PersonalignError("the prompt is empty")
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt \
            or not all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str) for m in prompt):
        raise PersonalignError("a prompt is text, or a non-empty list of {'role', 'content'} messages with text "
                               "contents")
    if prompt[-1]["role"] != "user" or not prompt[-1]["content"].strip():
        raise PersonalignError("a chat prompt must end with a non-empty user message")
    return [dict(m) for m in prompt]


def render_ids(tokenizer, prompt: "str | Messages", principle: str | None) -> list[int]:
    """Token ids of the chat-formatted prompt whose last user turn carries the PAD principle."""
    messages = as_messages(prompt)
    messages[-1]["content"] = pad_user_turn(messages[-1]["content"], principle)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    # A model without a chat template reads the turns as plain text.
    text = "\n".join(m["content"] for m in messages)
    return tokenizer(text)["input_ids"]


def bare_prompt(tokenizer, request, principle: str | None = None) -> list[int]:
    """Renderer: the request's prompt as given; a preference, if any, is not shown."""
    return render_ids(tokenizer, request.prompt, None)


def pad_prompt(tokenizer, request, principle: str | None) -> list[int]:
    """Renderer: the preference `principle` inside PAD's principle template (the bare prompt when there is none)."""
    return render_ids(tokenizer, request.prompt, principle)
