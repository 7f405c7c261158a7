"""What an evaluation run compares, from command-line flags or a YAML file, validated once with field names.

    methods: [base, prompt, pad, best-of-n, args]
    preferences: [elementary, expert, concise, informative, friendly, unfriendly]   # names, texts or a=0.7,b=0.3
    judges: [offline]
    prompts: koala_eval_50          # a named prompt set or a JSONL file of {"prompt": ...}
    limit: 20
    max_new_tokens: 64
    beta: [0.5, 1.0, 2.0]           # a list makes a beta sweep for the guided methods
    out: eval-out
"""

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ..data.prompt_sets import prompt_set_names
from ..decoding.methods import default_betas
from ..decoding.request import DEFAULT_END_OF_TURN, END_OF_TURN
from ..errors import PersonalignError
from ..flag_help import flag_help
from ..validation import check_beta, check_number
from .plan import METHODS, methods_of
PSOUPS_PREFERENCES = ["elementary", "expert", "concise", "informative", "friendly", "unfriendly"]


@dataclass
class EvalConfig:
    methods: list[str] = field(default_factory=lambda: ["base", "prompt", "pad"],
                               metadata=flag_help(f"comma-separated, from: {', '.join(METHODS)}"))
    preferences: list[str] = field(default_factory=lambda: list(PSOUPS_PREFERENCES), metadata=flag_help(
        "'|'-separated (texts may contain commas): catalog names, free texts or mixes like concise=0.7,friendly=0.3",
        sep="|"))
    judges: list[str] = field(default_factory=lambda: ["offline"], metadata=flag_help(
        "comma-separated: offline, relevance (free-text preferences), hf:PATH[@dims], rm:DIR, llm:MODEL@URL"))
    prompts: str = field(default="koala_eval_50", metadata=flag_help(
        f"a prompt set ({', '.join(prompt_set_names())}) or a JSONL file of " '{"prompt": ...}'))
    limit: int | None = field(default=None, metadata=flag_help("use the first N prompts"))
    max_new_tokens: int = field(default=64, metadata=flag_help("most tokens per answer"))
    beta: list[float] = field(default_factory=list, metadata=flag_help(
        "comma-separated; several values make a beta sweep of the guided methods (none: each method's own, "
        f"{default_betas()})"))
    top_k: int = field(default=10, metadata=flag_help("candidates re-ranked per step"))
    end_of_turn: str = field(default=DEFAULT_END_OF_TURN, metadata=flag_help(
        "how the PAD methods score the end of turn: base (no reward: the base decides when to stop) or reward "
        "(PAD's released rule)", choices=END_OF_TURN))
    out: str = field(default="eval-out", metadata=flag_help("output directory (re-running into it resumes)"))
    baseline: str = field(default="base", metadata=flag_help("the method whose answer to the same prompt win rates are "
                                                         "measured against"))
    best_of_n: int = field(default=4, metadata=flag_help("samples per best-of-n answer"))
    temperature: float = field(default=0.7, metadata=flag_help("best-of-n's sampling temperature"))
    reward_judge: str = field(default="offline", metadata=flag_help("the judge steering args and picking best-of-n"))
    system_info: str | None = field(default=None, metadata=flag_help(
        "MetaAlign's System Info for the meta-prompt methods (none: 'You are an AI assistant.')"))
    soups: dict[str, str] = field(default_factory=dict, metadata=flag_help(
        "a LoRA adapter per dimension for the soups method: concise=DIR,friendly=DIR"))
    batch_size: int = field(default=8, metadata=flag_help("requests decoded together"))
    seed: int = field(default=0, metadata=flag_help("seed of best-of-n's samples"))
    base: str | None = field(default=None, metadata=flag_help("base model: a local dir or hub id (none: embedded "
                                                          "SmolLM2)"))
    policy: str | None = field(default=None, metadata=flag_help(
        "MetaAlign policy for metaalign and metaalign-pad: a saved policy dir (train-policy's RUN/policy) or "
        "'untrained' (none; default: the policy shipped for the embedded model, none for other bases)"))
    persrm: str | None = field(default=None, metadata=flag_help(
        "PersRM for pad/fusion: a saved PersRM dir or 'untrained' (none: the trained one shipped for the embedded "
        "model, else untrained)"))
    device: str | None = field(default=None, metadata=flag_help("auto, cpu, cuda, cuda:1"))
    dtype: str | None = field(default=None, metadata=flag_help("auto, bf16, fp16, fp32"))
    data_dir: str | None = field(default=None, metadata=flag_help("the shared data directory (none: $PERSONALIGN_DATA "
                                                              "or ../shared/data)"))

    @classmethod
    def from_yaml(cls, path: str) -> "EvalConfig":
        import yaml
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise PersonalignError(f"config file not found: {path}") from None
        except yaml.YAMLError as error:
            raise PersonalignError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise PersonalignError(f"{path}: expected a mapping of fields (methods:, preferences:, ...)")
        return cls.from_dict(raw, where=path)

    @classmethod
    def from_dict(cls, raw: dict, where: str = "config") -> "EvalConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PersonalignError(f"{where}: unknown field {unknown[0]!r}; fields are: {', '.join(sorted(known))}")
        values = {}
        for f in fields(cls):
            if f.name in raw:
                default = f.default_factory() if f.default is MISSING else f.default
                values[f.name] = _coerce(f.name, raw[f.name], default, where)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in self.methods:
            if name not in METHODS:
                raise PersonalignError(f"methods: unknown method {name!r}; methods are: {', '.join(METHODS)}")
        if not self.methods:
            raise PersonalignError("methods: give at least one method")
        if not self.preferences:
            raise PersonalignError("preferences: give at least one preference")
        if not self.judges:
            raise PersonalignError("judges: give at least one judge")
        if self.baseline not in METHODS:
            raise PersonalignError(f"baseline: unknown method {self.baseline!r}")
        if self.end_of_turn not in END_OF_TURN:
            raise PersonalignError(f"end_of_turn: {self.end_of_turn!r} is not one of {', '.join(END_OF_TURN)}")
        for beta in self.beta:
            check_beta(beta)
        for name in ("max_new_tokens", "top_k", "best_of_n", "batch_size"):
            check_number(name, getattr(self, name), minimum=1, whole=True)
        if self.limit is not None:
            check_number("limit", self.limit, minimum=1, whole=True)
        check_number("seed", self.seed, minimum=0, whole=True)
        merged = [m.name for m in methods_of(self) if m.merged_weights]
        if merged and not self.soups:
            raise PersonalignError(f"soups: the {merged[0]} method needs an adapter per dimension, e.g. "
                                   "--soups concise=DIR,friendly=DIR")
        check_number("temperature (best-of-n samples)", self.temperature, above=0)


def _coerce(name, value, default, where):
    """Check a YAML value against the field's type, accepting a scalar where a list is expected."""
    sample = default
    try:
        if isinstance(sample, dict):
            if not isinstance(value, dict):
                raise ValueError
            return {str(k): str(v) for k, v in value.items()}
        if isinstance(sample, list):
            items = value if isinstance(value, list) else [value]
            kind = float if name == "beta" else str
            return [kind(v) for v in items]
        if value is None:
            if default is not None:  # only the optional fields (default None) take no value
                raise ValueError
            return None
        if isinstance(sample, bool) or isinstance(value, bool):
            raise ValueError
        if isinstance(sample, int) or name == "limit":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(sample, float):
            return float(value)
        if isinstance(value, (list, dict)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise PersonalignError(f"{where}: field {name!r} has a bad value {value!r}") from None
