"""Settings of a MetaAlign policy run (`personalign train-policy`): one dataclass for the run and one per stage, each
field with the help text its flag shows (commands/flags.py builds the flags)."""

from dataclasses import asdict, dataclass, field

from ..errors import PersonalignError
from ..flag_help import flag_help
from ..validation import check_number

RECIPES = ("sft", "sft-dpo")
DPO_PAIRS = ("data", "sampled", "stated")  # stated: training/stated_pairs.py
JUDGED_PAIRS = ("sampled", "stated")  # the policy writes them, a judge ranks them
DPO_REJECTED = ("worst", "greedy")  # training/sampled_pairs.py
SFT_BATCHING = ("by-length", "random")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
LORA_MODULES = {"attention": ["q_proj", "k_proj", "v_proj", "o_proj"],  # peft names, for Llama-style bases
                "all-linear": "all-linear"}  # every linear layer but the output head: style lives in the MLPs too


@dataclass
class PolicyConfig:
    data: str = field(metadata=flag_help("a `personalign data metaalign` directory: sft_train/sft_valid.jsonl for SFT, "
                                     "train/valid.jsonl for DPO", metavar="DIR"))
    out: str = field(metadata=flag_help("run directory: policy_config.json, metrics.jsonl, sft/, dpo/, policy/",
                                    metavar="DIR"))
    recipe: str = field(default="sft-dpo", metadata=flag_help("sft: one stage of SFT; sft-dpo: SFT, then DPO from the "
                                                          "SFT policy", choices=RECIPES))
    base: str | None = field(default=None, metadata=flag_help("base model: a local dir or hub id (none: embedded "
                                                          "SmolLM2)"))
    lora_r: int = field(default=16, metadata=flag_help("LoRA rank of the policy adapter (alpha is twice the rank)"))
    lora_modules: str = field(default="attention", metadata=flag_help(
        "layers the adapter trains: attention (q/k/v/o projections), or all-linear (also the MLPs: on this 2-core "
        "CPU a step took 1.5x as long, README)", choices=tuple(LORA_MODULES)))
    lora_dropout: float = field(default=0.05, metadata=flag_help(
        "dropout on the adapter's input during training (0: runs across processes equal one process exactly)"))
    max_length: int = field(default=256, metadata=flag_help("tokens of meta-prompt, prompt and answer"))
    batch_size: int = field(default=4, metadata=flag_help("examples (SFT) or pairs (DPO) per step and device"))
    grad_accum: int = field(default=1, metadata=flag_help("micro-batches per optimizer step"))
    eval_limit: int = field(default=200, metadata=flag_help("held-out examples / pairs per evaluation (a seeded "
                                                        "sample)"))
    save_every: int = field(default=30, metadata=flag_help(
        "steps between checkpoints (what --resume continues from); a multiple of --log-every"))
    log_every: int = field(default=10, metadata=flag_help("steps between metrics lines"))
    seed: int = field(default=0, metadata=flag_help("seed of the sampling, the batches and the initialization"))
    device: str | None = field(default=None, metadata=flag_help("auto (CUDA when there is one), cpu, cuda"))
    mixed_precision: str = field(default="auto", metadata=flag_help(
        "auto: bf16 autocast where it is faster (a GPU with bf16; a CPU where a quick probe says so); no, bf16, fp16",
        choices=MIXED_PRECISION))

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise PersonalignError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.lora_modules not in LORA_MODULES:
            raise PersonalignError(f"lora_modules must be one of {', '.join(LORA_MODULES)}, got {self.lora_modules!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise PersonalignError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        for name in ("lora_r", "max_length", "batch_size", "grad_accum", "eval_limit", "save_every", "log_every"):
            check_number(name, getattr(self, name), minimum=1, whole=True)
        check_number("seed", self.seed, minimum=0, whole=True)
        check_number("lora_dropout", self.lora_dropout, minimum=0, below=1)
        if self.save_every % self.log_every:
            # transformers' Trainer keeps the values of a metrics window out of its checkpoints: one taken inside a
            # window would make a resumed run's next line average fewer steps than an uninterrupted run's
            raise PersonalignError(f"save_every ({self.save_every}) must be a multiple of log_every "
                                   f"({self.log_every}), so that checkpoints fall between metrics lines")


@dataclass
class SFTStage:
    sft_steps: int = field(default=200, metadata=flag_help(
        "SFT steps on the meta-prompted preferred answers (0 with --sft-init and recipe sft-dpo: DPO straight from "
        "that saved policy)"))
    sft_lr: float = field(default=2e-4, metadata=flag_help("SFT learning rate"))
    sft_eval_every: int = field(default=50, metadata=flag_help("SFT steps between held-out evaluations"))
    sft_batching: str = field(default="by-length", metadata=flag_help(
        "by-length: batches of examples of similar length (on the shipped data a third fewer padded tokens a step, "
        "README); random: batches in any order", choices=SFT_BATCHING))
    sft_init: str | None = field(default=None, metadata=flag_help(
        "a saved MetaAlign policy (RUN/policy) whose adapter SFT trains on, instead of a new adapter: its rank and "
        "layers must be the run's --lora-r and --lora-modules", metavar="DIR"))

    def validate(self) -> None:
        if self.sft_batching not in SFT_BATCHING:
            raise PersonalignError(f"sft_batching must be one of {', '.join(SFT_BATCHING)}, got {self.sft_batching!r}")
        check_number("sft_steps", self.sft_steps, minimum=0, whole=True)
        check_number("sft_lr", self.sft_lr, above=0)
        check_number("sft_eval_every", self.sft_eval_every, minimum=1, whole=True)


@dataclass
class DPOStage:
    dpo_steps: int = field(default=100, metadata=flag_help("DPO steps from the SFT policy (recipe sft-dpo)"))
    dpo_lr: float = field(default=5e-5, metadata=flag_help("DPO learning rate"))
    dpo_beta: float = field(default=0.1, metadata=flag_help("DPO beta"))
    dpo_eval_every: int = field(default=25, metadata=flag_help("DPO steps between held-out evaluations"))
    dpo_pairs: str = field(default="data", metadata=flag_help(
        "data: DPO on the data's pairs; sampled: on pairs the SFT policy samples and the evaluation judges rank; "
        "stated: on implicit contexts, the SFT policy's greedy answer under the stated preference over its answer "
        "under the background, where the judges rank it higher (both written to RUN/sampled_pairs.jsonl)",
        choices=DPO_PAIRS))
    dpo_contexts: int = field(default=256, metadata=flag_help(
        "sampled or stated pairs: how many training (meta-prompt, prompt) contexts to write answers for"))
    dpo_samples: int = field(default=4, metadata=flag_help("sampled pairs: answers sampled per context"))
    dpo_sample_tokens: int = field(default=96, metadata=flag_help(
        "sampled or stated pairs: most tokens per answer"))
    dpo_temperature: float = field(default=0.8, metadata=flag_help("sampled pairs: sampling temperature"))
    dpo_min_on_question: float = field(default=0.5, metadata=flag_help(
        "sampled or stated pairs: an answer may be chosen only if its similarity to the prompt is at least this "
        "share of the data's chosen answer's (0: no check)"))
    dpo_rejected: str = field(default="worst", metadata=flag_help(
        "sampled pairs: the answer the best sample is preferred to: worst, the worst sample; greedy, the policy's "
        "own greedy answer (its mode, what greedy decoding gives), where the best sample beats it",
        choices=DPO_REJECTED))
    dpo_chosen_as_close: bool = field(default=False, metadata=flag_help(
        "sampled or stated pairs: the chosen answer must also stay at least as close to the question as the "
        "rejected one, so a pair differs in the preference, not in staying on the question"))

    def validate(self) -> None:
        if self.dpo_pairs not in DPO_PAIRS:
            raise PersonalignError(f"dpo_pairs must be one of {', '.join(DPO_PAIRS)}, got {self.dpo_pairs!r}")
        if self.dpo_rejected not in DPO_REJECTED:
            raise PersonalignError(f"dpo_rejected must be one of {', '.join(DPO_REJECTED)}, "
                                   f"got {self.dpo_rejected!r}")
        for name in ("dpo_contexts", "dpo_sample_tokens"):
            check_number(name, getattr(self, name), minimum=1, whole=True)
        check_number("dpo_samples", self.dpo_samples, minimum=2, whole=True)
        check_number("dpo_temperature", self.dpo_temperature, above=0)
        check_number("dpo_min_on_question", self.dpo_min_on_question, minimum=0, maximum=1)
        check_number("dpo_steps", self.dpo_steps, minimum=1, whole=True)
        check_number("dpo_lr", self.dpo_lr, above=0)
        check_number("dpo_beta", self.dpo_beta, above=0)
        check_number("dpo_eval_every", self.dpo_eval_every, minimum=1, whole=True)


def outcome_settings(run: PolicyConfig, sft: SFTStage, dpo: DPOStage) -> dict:
    """The settings that decide the trained policy: a resumed run must have the same ones."""
    settings = {**asdict(run), **asdict(sft), **(asdict(dpo) if run.recipe == "sft-dpo" else {})}
    if settings.get("dpo_pairs") == "data":  # the sampling settings then decide nothing
        for name in ("dpo_contexts", "dpo_samples", "dpo_sample_tokens", "dpo_temperature", "dpo_min_on_question",
                     "dpo_rejected", "dpo_chosen_as_close"):
            settings.pop(name)
    if settings.get("dpo_pairs") == "stated":  # greedy answers, no samples: these decide nothing
        for name in ("dpo_samples", "dpo_temperature", "dpo_rejected"):
            settings.pop(name)
    for name, before in (("dpo_rejected", "worst"), ("dpo_chosen_as_close", False)):
        if settings.get(name) == before:  # what runs did before the setting existed: they still resume
            settings.pop(name)
    for name in ("out", "device", "save_every", "log_every", "eval_limit", "sft_eval_every", "dpo_eval_every"):
        settings.pop(name, None)
    return settings
