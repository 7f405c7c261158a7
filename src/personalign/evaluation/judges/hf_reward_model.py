"""A transformers sequence-classification reward model as a pointwise judge (how PAD scores helpful/harmless/humor).

Input: when the tokenizer has a chat template, the pair is rendered as the conversation
[user: prompt, assistant: response] with it (special tokens come from the template); otherwise, or when a
`template` is given, as `template.format(prompt=..., response=...)` (default "{prompt}\\n\\n{response}") with
the tokenizer's own special tokens added.

Score: the logit of the single output when the model has one label; with two labels (a "bad"/"good"
classifier), the logit of label 1 minus the logit of label 0, i.e. the log-odds of "good". Other label
counts are refused. The dimension names only label the score: a reward model measures one thing, so all
its dimensions give the same number.

Batches are right-padded (so absolute-position models see the same positions as unpadded text), and the
model's pad_token_id is set to the tokenizer's pad token, because transformers' decoder classifiers read
the score at the last token that is not the pad token. Texts longer than the model's limit are cut on the
left, keeping the end of the response where a decoder reward model reads its score.
"""

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ...errors import PersonalignError
from ...models import _HUB_ID, choose_device, choose_dtype
from .base import Judge

DEFAULT_TEMPLATE = "{prompt}\n\n{response}"
_UNSET_MAX_LENGTH = 1_000_000  # tokenizers without a limit report ~1e30


class HFRewardModelJudge(Judge):
    """Scores responses with a local or hub sequence-classification reward model (see the module docstring).

    `device` defaults to CUDA when available, else CPU; `dtype` to fp32 on CPU and bf16/fp16 on CUDA.
    `template` (a str.format pattern with {prompt} and {response}) replaces the chat template.
    """

    def __init__(self, source: str, dims: tuple[str, ...] = ("reward",), *, device=None, dtype=None,
                 template: str | None = None, batch_size: int = 8):
        self.name = f"hf:{source}"
        self._dims = tuple(dims)
        self.batch_size = batch_size
        self.device = choose_device(device)
        # a judge wants exact scores over speed: fp32 on CPU (bf16 rounding turns close pairs into ties)
        self.dtype = choose_dtype(dtype if dtype is not None or self.device.type == "cuda" else "float32",
                                  self.device)
        self.tokenizer, self.model = _load(source, self.device, self.dtype)
        self._chat = template is None and bool(self.tokenizer.chat_template)
        self.template = template or DEFAULT_TEMPLATE
        self.max_length = _max_length(self.tokenizer, self.model.config)

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> "HFRewardModelJudge":
        """`PATH_OR_ID[@dim1,dim2]`; the dimensions default to ("reward",)."""
        source, _, dims = spec.rpartition("@") if "@" in spec else (spec, "", "")
        names = tuple(name.strip() for name in dims.split(",") if name.strip())
        if not source.strip():
            raise PersonalignError(f"judge spec {spec!r} names no model: use hf:PATH_OR_ID[@dim1,dim2]")
        return cls(source.strip(), names or ("reward",), **kwargs)

    def dimensions(self) -> tuple[str, ...]:
        return self._dims

    def render(self, prompt: str, response: str) -> str:
        """The text the reward model reads for one (prompt, response) pair."""
        if self._chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False)
        return self.template.format(prompt=prompt, response=response)

    def score(self, dimension: str, prompts: list[str], responses: list[str]) -> list[float]:
        """The reward of each response to its prompt, in batches of `batch_size`."""
        self.check(dimension)
        if len(prompts) != len(responses):
            raise PersonalignError(f"{len(prompts)} prompts but {len(responses)} responses; give one prompt each")
        texts = [self.render(p, r) for p, r in zip(prompts, responses)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            scores.extend(self._score_batch(texts[start:start + self.batch_size]))
        return scores

    @torch.inference_mode()
    def _score_batch(self, texts: list[str]) -> list[float]:
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=self.max_length is not None,
                                max_length=self.max_length, add_special_tokens=not self._chat).to(self.device)
        logits = self.model(**inputs).logits.float()
        rewards = logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]
        return rewards.tolist()



def _max_length(tokenizer, config) -> int | None:
    """The longest input the model takes: the tokenizer's limit or the position table's, whichever is known."""
    limits = [n for n in (tokenizer.model_max_length, getattr(config, "max_position_embeddings", None))
              if isinstance(n, int) and n < _UNSET_MAX_LENGTH]
    return min(limits) if limits else None


def _load(source: str, device: torch.device, dtype: torch.dtype):
    """(tokenizer, model) for `source`, set up for right-padded batches; PersonalignError when unloadable."""
    path = Path(source).expanduser()
    if not path.exists() and (source.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(source)):
        # clearly a filesystem path: asking the hub for it would only produce a confusing error
        raise PersonalignError(f"reward model directory not found: {source} (give an existing directory or a hub id)")
    where = str(path) if path.exists() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForSequenceClassification.from_pretrained(where, dtype=dtype)
    except (OSError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PersonalignError(f"could not load reward model {source!r}: {first_line}") from error
    if model.config.num_labels not in (1, 2):
        raise PersonalignError(f"{source} has {model.config.num_labels} output labels; a reward model needs 1 "
                               "(the reward) or 2 (bad/good)")
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token_id is None:
        if model.config.pad_token_id is not None:
            tokenizer.pad_token_id = model.config.pad_token_id
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            raise PersonalignError(f"{source}: its tokenizer has neither a pad nor an end-of-sequence token")
    # the classifier reads the score at the last token that is not this id
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    return tokenizer, model.to(device).eval()
