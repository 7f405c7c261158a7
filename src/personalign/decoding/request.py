"""What a caller asks for (GenerationRequest, validated eagerly) and what comes back (GenerationResult)."""

from dataclasses import dataclass, field

from ..errors import PersonalignError
from ..flag_help import flag_help
from ..meta_prompt import MetaPrompt
from ..preferences import Preference
from ..prompts import Messages, as_messages
from ..validation import check_beta, check_number, check_top_k
from . import methods

REWARD_FORMS = ("decoupled", "released")
END_OF_TURN = ("reward", "base")
DEFAULT_END_OF_TURN = "base"  # not the released rule: README, How PAD is decoded


def check_beta_top_k(beta: float, top_k: int, allow_negative_beta: bool = False) -> None:
    """PAD's two knobs, validated the same way wherever they enter."""
    check_beta(beta, allow_negative_beta)
    check_top_k(top_k)


@dataclass
class GenerationRequest:
    """One prompt to answer.

    method: a name from the method registry (decoding/methods.py), where each method declares its rows, prompt
    renderer, scoring rule and cost per token.
    reward: `released` (r = log pi_theta(a|s,p) - log pi_base(a|s,p), the released code) or `decoupled`
    (r = log pi_theta(a|s,p) - log pi_theta(a|s), which personalizes even an untrained PersRM); None takes the
    engine's default. beta is the guidance strength of the guided methods (None: the method's own default, set on
    construction). temperature 0 is greedy.
    """

    prompt: "str | Messages"
    preference: Preference = field(default_factory=Preference.none)
    method: str = methods.DEFAULT
    beta: float | None = field(default=None, metadata=flag_help(
        f"weight of the personalized reward ({', '.join(methods.names(guided=True))}; none: the method's own, "
        f"{methods.default_betas()})"))
    top_k: int = field(default=10, metadata=flag_help("candidates re-ranked per step"))
    max_new_tokens: int = field(default=128, metadata=flag_help("most tokens generated per answer"))
    temperature: float = field(default=0.0, metadata=flag_help("sampling temperature; 0 = greedy"))
    top_p: float = field(default=1.0, metadata=flag_help("nucleus sampling: smallest set of candidates with this much "
                                                      "probability (1 = all k)"))
    seed: int | None = field(default=None, metadata=flag_help("seed for sampling (none: a fresh one per answer)"))
    stop: tuple[str, ...] = field(default=(), metadata=flag_help("stop string; repeatable", action="append"))
    reward: str | None = field(default=None, metadata=flag_help("PAD reward form (none: released, see README)",
                                                            choices=REWARD_FORMS))
    end_of_turn: str = field(default=DEFAULT_END_OF_TURN, metadata=flag_help(
        "how PAD scores the end of turn: base (no reward: the base decides when to stop, as PersRMs trained on "
        "answers cut at a token limit never learned it) or reward (its reward, like any token: PAD's released rule)",
        choices=END_OF_TURN))
    system_info: str | None = field(default=None, metadata=flag_help(
        "MetaAlign's System Info, what the provider requires (meta-prompting; none: 'You are an AI assistant.')"))
    allow_negative_beta: bool = field(default=False, metadata=flag_help("accept beta < 0 (steer away from the "
                                                                    "preference)"))
    ignore_eos: bool = False  # keep going past end-of-sequence (fixed-length benchmarks)

    def __post_init__(self):
        as_messages(self.prompt)  # raises on an empty prompt
        self.preference = Preference.parse(self.preference)
        self.stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        method = methods.get(self.method)  # refuses an unknown name, listing the registry's
        if self.beta is None:
            self.beta = method.default_beta
        if self.reward is not None and self.reward not in REWARD_FORMS:
            raise PersonalignError(f"unknown reward form {self.reward!r}; choose one of {', '.join(REWARD_FORMS)}")
        if self.reward is not None and method.reward_form not in (None, self.reward):
            raise PersonalignError(f"method {self.method!r} takes only the {method.reward_form} reward form, not "
                                   f"{self.reward!r}")
        if self.end_of_turn not in END_OF_TURN:
            raise PersonalignError(f"unknown end_of_turn {self.end_of_turn!r}; choose one of {', '.join(END_OF_TURN)}")
        if method.needs_preference and self.preference.is_empty:
            raise PersonalignError(f"method {self.method!r} needs a preference (--preference or --dims); "
                                   f"use --method {methods.UNPERSONALIZED} for none")
        if self.system_info is not None:
            if not method.reads_system_info:
                raise PersonalignError(f"system_info is read by meta-prompt methods only "
                                       f"({', '.join(n for n in methods.names() if methods.get(n).reads_system_info)}),"
                                       f" not by {self.method!r}")
            MetaPrompt(self.system_info)  # the tier's own checks
        check_beta_top_k(self.beta, self.top_k, self.allow_negative_beta)
        check_number("max_new_tokens", self.max_new_tokens, minimum=1, whole=True)
        check_number("temperature", self.temperature, minimum=0)
        check_number("top_p", self.top_p, above=0, maximum=1)
        if self.seed is not None:
            check_number("seed", self.seed, minimum=0, maximum=2**63 - 1, whole=True)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise PersonalignError(f"stop strings must be non-empty text, got {list(self.stop)!r}")

    @property
    def guided(self) -> bool:
        """Whether a guide takes part (beta = 0 reduces every guided method to the base model's top-k argmax)."""
        return methods.get(self.method).guided and self.beta != 0


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
