"""What a caller asks for (GenerationRequest, validated eagerly) and what comes back (GenerationResult)."""

import math
from dataclasses import dataclass, field

from ..errors import PersonalignError
from ..preferences import Preference
from ..prompts import Messages, as_messages

METHODS = ("pad", "prompt", "base", "fusion", "args")
GUIDED_METHODS = ("pad", "fusion", "args")  # methods whose beta weighs a guide against the base
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

    method (extra forward rows per token in brackets; rows of one forward share the weights' memory traffic):
      `base`    no preference at all [1 row]
      `prompt`  the preference in the prompt, plain decoding [1 row]
      `pad`     PersRM-guided: score = z_base + beta * r over the base's top-k [1 row released with a head-only
                PersRM on the base, else +1 per preference component, +1 for the decoupled reference]
      `fusion`  logit fusion (GenARM, DeRa, proxy-tuning): log pi_base + beta * sum_i w_i (log pi_guide_i -
                log pi_base) over the whole vocabulary, the base reading no preference and the guide (the PersRM)
                reading each component; a weighted mix with beta = 1 is MOD's sum_i w_i log pi_i [+1 per component]
      `args`    ARGS: score = z_base + beta * R(prompt, answer so far + candidate) over the base's top-k, R a
                sequence-level reward the engine was given [no extra rows; k reward calls per token]
    reward: `released` (r = log pi_theta(a|s,p) - log pi_base(a|s,p), the released code) or `decoupled`
    (r = log pi_theta(a|s,p) - log pi_theta(a|s), which personalizes even an untrained PersRM); None takes the
    engine's default. beta is the guidance strength of pad, fusion and args. temperature 0 is greedy.
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
        if self.method != "base" and self.preference.is_empty:
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
        """Whether a guide takes part (beta = 0 reduces every guided method to the base model's top-k argmax)."""
        return self.method in GUIDED_METHODS and self.beta != 0


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
