"""What a caller asks for (GenerationRequest, validated eagerly) and what comes back (GenerationResult)."""

import math
from dataclasses import dataclass, field

from ..errors import PersonalignError
from ..preferences import Preference
from ..prompts import Messages, as_messages

METHODS = ("pad", "prompt", "base")
REWARD_FORMS = ("decoupled", "released")


def check_beta_top_k(beta: float, top_k: int) -> None:
    """PAD's two knobs, validated the same way wherever they enter."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta):
        raise PersonalignError(f"beta must be a finite number, got {beta!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise PersonalignError(f"top_k must be a whole number >= 1, got {top_k}")


@dataclass
class GenerationRequest:
    """One prompt to answer.

    method: `pad` (PersRM-guided decoding), `prompt` (the preference in the prompt, plain decoding) or `base`
    (no preference at all). reward: `released` (r = log pi_theta(a|s,p) - log pi_base(a|s,p), the released code) or
    `decoupled` (r = log pi_theta(a|s,p) - log pi_theta(a|s), which personalizes even an untrained PersRM);
    None takes the engine's default. temperature 0 is greedy.
    """

    prompt: "str | Messages"
    preference: Preference = field(default_factory=Preference.none)
    method: str = "pad"
    beta: float = 1.0
    top_k: int = 10
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    reward: str | None = None
    ignore_eos: bool = False  # keep going past end-of-sequence (fixed-length benchmarks)

    def __post_init__(self):
        as_messages(self.prompt)  # raises on an empty prompt
        self.preference = Preference.parse(self.preference)
        self.stop = tuple(self.stop)
        if self.method not in METHODS:
            raise PersonalignError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.reward is not None and self.reward not in REWARD_FORMS:
            raise PersonalignError(f"unknown reward form {self.reward!r}; choose one of {', '.join(REWARD_FORMS)}")
        if self.method in ("pad", "prompt") and self.preference.is_empty:
            raise PersonalignError(f"method {self.method!r} needs a preference (--preference or --dims); "
                                   "use --method base for none")
        check_beta_top_k(self.beta, self.top_k)
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise PersonalignError(f"max_new_tokens must be a whole number >= 1, got {self.max_new_tokens}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise PersonalignError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not (0 < self.top_p <= 1):
            raise PersonalignError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def guided(self) -> bool:
        """Whether the PersRM takes part (beta = 0 reduces PAD to the base model's top-k argmax)."""
        return self.method == "pad" and self.beta != 0


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]  # generated ids, the end-of-sequence id included when it ended the answer
    prompt_token_ids: list[int]  # the ids the base model read (and the PersRM, in the released form)
    finish_reason: str  # "eos", "stop" (a stop string) or "length"
    method: str
    preference: str
    beta: float

    def to_json(self) -> dict:
        return dict(self.__dict__)
