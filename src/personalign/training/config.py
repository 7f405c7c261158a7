"""Settings of a PersRM training run (`personalign train-rm`), checked once before anything is loaded."""

from dataclasses import asdict, dataclass

from ..errors import PersonalignError

REFERENCES = ("with-preference", "without-preference")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    train: str  # pairs JSONL
    out: str
    valid: str | None = None  # pairs JSONL; None: a split of `train` by prompt
    valid_fraction: float = 0.1
    hold_out: tuple[str, ...] = ()  # preferences kept out of training and reported as unseen
    train_only: str | None = None  # pairs JSONL used for training only (e.g. synth's loop_pairs.jsonl)
    base: str | None = None  # the backbone; None: the embedded SmolLM2
    reference: str = "with-preference"
    beta: float = 0.1
    stage1_steps: int = 300  # DPO on LoRA + head
    stage2_steps: int = 100  # head only, adapter frozen
    batch_size: int = 4  # pairs per optimizer step and process
    grad_accum: int = 1
    lr_stage1: float = 1e-4
    lr_stage2: float = 1e-4
    warmup_steps: int = 10
    # dropout on the head's input: 0.1 in the released checkpoint, but on a reward summed over the response it
    # adds noise of sd ~3 to the untrained margin (README, Training a PersRM), so it is off by default
    head_dropout: float = 0.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    max_length: int = 256
    eval_every: int = 50
    eval_limit: int | None = 400  # held-out pairs per evaluation (None: all)
    save_every: int = 25
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"
    device: str | None = None  # None: CUDA when there is one
    dtype: str | None = "fp32"

    def validate(self) -> None:
        if self.reference not in REFERENCES:
            raise PersonalignError(f"reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise PersonalignError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        for name in ("stage1_steps", "stage2_steps"):
            if getattr(self, name) < 0:
                raise PersonalignError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "grad_accum", "lora_r", "max_length", "eval_every", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise PersonalignError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.valid_fraction < 1:
            raise PersonalignError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")
        if self.beta <= 0 or self.lr_stage1 <= 0 or self.lr_stage2 <= 0:
            raise PersonalignError("beta and the learning rates must be > 0")
        if not 0 <= self.head_dropout < 1:
            raise PersonalignError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise PersonalignError(f"eval_limit must be >= 1, got {self.eval_limit}")

    def outcome_settings(self) -> dict:
        """The settings that decide the trained weights: a resumed run must have the same ones."""
        skip = {"out", "eval_every", "eval_limit", "save_every", "log_every", "device"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in skip}

    @classmethod
    def from_outcome_settings(cls, settings: dict, **others) -> "TrainConfig":
        """The inverse of `outcome_settings` (a run's train_config.json), with the settings it skips given."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}, **others)
