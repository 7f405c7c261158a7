"""Settings of a PersRM training run (`personalign train-rm`), checked once before anything is loaded."""

from dataclasses import asdict, dataclass, field

from ..errors import PersonalignError
from ..flag_help import flag_help
from ..validation import check_number

REFERENCES = ("with-preference", "without-preference")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    train: str = field(metadata=flag_help('training pairs: {"preference", "prompt", "chosen", "rejected"} per line',
                                      metavar="PAIRS.jsonl"))
    out: str = field(metadata=flag_help("run directory: train_config.json, checkpoint, metrics.jsonl, persrm/",
                                    metavar="DIR"))
    valid: str | None = field(default=None, metadata=flag_help("held-out pairs (none: a --valid-fraction of --train, "
                                                           "split by prompt)", metavar="PAIRS.jsonl"))
    valid_fraction: float = field(default=0.1,
                                  metadata=flag_help("share of --train's prompts held out when no --valid"))
    hold_out: tuple[str, ...] = field(default=(), metadata=flag_help(
        "keep this preference out of training and report it as unseen; repeatable or comma-separated (e.g. a whole "
        "P-SOUPS axis: friendly,unfriendly), or a file of them, one per line (for preferences with commas)",
        action="append", sep=",", metavar="PREFERENCE"))
    train_only: tuple[str, ...] = field(default=(), metadata=flag_help(
        "more pairs for training only, never held out (e.g. data synth's loop_pairs.jsonl); those of --hold-out "
        "preferences or of held-out prompts are left out; repeatable or comma-separated", action="append", sep=",",
        metavar="PAIRS.jsonl"))
    base: str | None = field(default=None,
                             metadata=flag_help("backbone: a local dir or hub id (none: embedded SmolLM2)"))
    reference: str = field(default="with-preference", metadata=flag_help(
        "what the frozen reference reads (see README, Training a PersRM)", choices=REFERENCES))
    beta: float = field(default=0.1, metadata=flag_help("DPO beta"))
    stage1_steps: int = field(default=300, metadata=flag_help("steps of DPO on LoRA + head"))
    stage2_steps: int = field(default=100, metadata=flag_help("steps on the head alone, adapter frozen"))
    batch_size: int = field(default=4, metadata=flag_help("pairs per optimizer step and process"))
    grad_accum: int = field(default=1, metadata=flag_help("micro-batches per optimizer step"))
    lr_stage1: float = field(default=1e-4, metadata=flag_help("learning rate of stage 1"))
    lr_stage2: float = field(default=1e-4, metadata=flag_help("learning rate of stage 2"))
    warmup_steps: int = 10
    # dropout on the head's input: 0.1 in the released checkpoint, but on a reward summed over the response it
    # adds noise of sd ~3 to the untrained margin (README, Training a PersRM), so it is off by default
    head_dropout: float = field(default=0.0, metadata=flag_help("dropout on the head's input in training (the "
                                                            "released PAD: 0.1)"))
    init: str | None = field(default=None, metadata=flag_help(
        "a saved PersRM (RUN/persrm) whose adapter and head stage 1 goes on training instead of fresh ones (a round "
        "on new pairs, e.g. on-policy ones); its rank and layers must be the run's --lora-r and LoRA layers",
        metavar="DIR"))
    lora_r: int = field(default=16, metadata=flag_help("LoRA rank (alpha is twice the rank)"))
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    max_length: int = field(default=256, metadata=flag_help("tokens of prompt + response"))
    eval_every: int = field(default=50, metadata=flag_help("steps between held-out evaluations"))
    eval_limit: int | None = field(default=400, metadata=flag_help("held-out pairs per evaluation (a seeded sample)"))
    save_every: int = field(default=25, metadata=flag_help("steps between checkpoints (what --resume continues from)"))
    log_every: int = 10
    seed: int = field(default=0, metadata=flag_help("seed of the split, the batches and the initialization"))
    mixed_precision: str = field(default="no", metadata=flag_help("autocast precision (bf16 on GPUs)",
                                                              choices=MIXED_PRECISION))
    device: str | None = field(default=None, metadata=flag_help("auto (CUDA when there is one), cpu, cuda"))
    dtype: str | None = "fp32"

    def validate(self) -> None:
        if self.reference not in REFERENCES:
            raise PersonalignError(f"reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise PersonalignError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        for name in ("stage1_steps", "stage2_steps"):
            check_number(name, getattr(self, name), minimum=0, whole=True)
        for name in ("batch_size", "grad_accum", "lora_r", "max_length", "eval_every", "save_every", "log_every"):
            check_number(name, getattr(self, name), minimum=1, whole=True)
        check_number("valid_fraction", self.valid_fraction, above=0)
        if self.valid_fraction >= 1:
            raise PersonalignError(f"valid_fraction must be < 1, got {self.valid_fraction:g}")
        for name in ("beta", "lr_stage1", "lr_stage2"):
            check_number(name, getattr(self, name), above=0)
        check_number("head_dropout", self.head_dropout, minimum=0)
        if self.head_dropout >= 1:
            raise PersonalignError(f"head_dropout must be < 1, got {self.head_dropout:g}")
        if self.eval_limit is not None:
            check_number("eval_limit", self.eval_limit, minimum=1, whole=True)
        check_number("seed", self.seed, minimum=0, whole=True)

    def outcome_settings(self) -> dict:
        """The settings that decide the trained weights: a resumed run must have the same ones."""
        skip = {"out", "eval_every", "eval_limit", "save_every", "log_every", "device"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in skip}

    @classmethod
    def from_outcome_settings(cls, settings: dict, **others) -> "TrainConfig":
        """The inverse of `outcome_settings` (a run's train_config.json), with the settings it skips given."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}, **others)
