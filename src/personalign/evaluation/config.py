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

import math
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from ..errors import PersonalignError

METHODS = ("base", "prompt", "pad", "pad-decoupled", "fusion", "best-of-n", "args", "soups")
PSOUPS_PREFERENCES = ["elementary", "expert", "concise", "informative", "friendly", "unfriendly"]


@dataclass
class EvalConfig:
    methods: list[str] = field(default_factory=lambda: ["base", "prompt", "pad"])
    preferences: list[str] = field(default_factory=lambda: list(PSOUPS_PREFERENCES))
    judges: list[str] = field(default_factory=lambda: ["offline"])
    prompts: str = "koala_eval_50"
    limit: int | None = None
    max_new_tokens: int = 64
    beta: list[float] = field(default_factory=lambda: [1.0])
    top_k: int = 10
    out: str = "eval-out"
    baseline: str = "base"  # win rates are against this method's answer to the same prompt
    best_of_n: int = 4  # samples per answer for best-of-n
    temperature: float = 0.7  # sampling temperature of best-of-n
    reward_judge: str = "offline"  # ARGS's sequence reward and best-of-n's picker
    soups: dict[str, str] = field(default_factory=dict)  # dimension -> LoRA adapter dir, for the soups method
    batch_size: int = 8
    seed: int = 0
    base: str | None = None
    persrm: str | None = None
    device: str | None = None
    dtype: str | None = None
    data_dir: str | None = None

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
        if not self.beta or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in self.beta):
            raise PersonalignError(f"beta: give finite numbers, got {self.beta}")
        for name in ("max_new_tokens", "top_k", "best_of_n", "batch_size"):
            if getattr(self, name) < 1:
                raise PersonalignError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise PersonalignError(f"limit: must be >= 1, got {self.limit}")
        if "soups" in self.methods + [self.baseline] and not self.soups:
            raise PersonalignError("soups: the soups method needs an adapter per dimension, e.g. "
                                   "--soups concise=DIR,friendly=DIR")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise PersonalignError(f"temperature: best-of-n samples, so it must be > 0, got {self.temperature}")


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
