"""`personalign train-rm`: train a PersRM on preference pairs (two stages; see training/trainer.py).

    personalign data synth --out runs/synth
    personalign train-rm --train runs/synth/pairs.jsonl --out runs/persrm --hold-out friendly,unfriendly
    personalign train-rm --train runs/synth/pairs.jsonl --out runs/persrm --hold-out held-out.txt   # one per line
    personalign generate "Explain DNS" -p concise --persrm runs/persrm/persrm

A killed run continues with the same command and --resume. The table at the end gives held-out preference accuracy
before and after training.
"""

from .flags import add_flags, flag_values
from ..training.config import TrainConfig

FLAGS = ["train", "valid", "train_only", "out", "hold_out", "reference", "base", "beta", "stage1_steps",
         "stage2_steps", "batch_size", "grad_accum", "lr_stage1", "lr_stage2", "head_dropout", "init", "lora_r",
         "max_length", "valid_fraction", "eval_every", "eval_limit", "save_every", "seed", "mixed_precision", "device"]


def add_arguments(parser) -> None:
    add_flags(parser, TrainConfig, FLAGS)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after a kill")


def config_from_args(args) -> TrainConfig:
    values = flag_values(args, TrainConfig, FLAGS)
    values["hold_out"] = hold_out_with_files(values["hold_out"])
    return TrainConfig(**values, lora_alpha=2 * values["lora_r"])


def hold_out_with_files(values: tuple[str, ...]) -> tuple[str, ...]:
    """--hold-out's preferences, a value that is a file standing for its lines (one preference each, blank lines
    skipped): the way to name preferences that contain commas, which the flag itself splits at."""
    from pathlib import Path

    from ..validation import read_nonblank_lines

    expanded = []
    for value in values:
        if Path(value).is_file():
            expanded += read_nonblank_lines(value, "--hold-out file")
        else:
            expanded.append(value)
    return tuple(dict.fromkeys(expanded))


def run(args) -> int:
    config = config_from_args(args)
    from . import quiet_loading
    from ..training.trainer import train_persrm

    quiet_loading()
    summary = train_persrm(config, resume=args.resume)
    print_summary(summary, before="--init" if config.init else "untrained")
    print(f"PersRM saved to {config.out}/persrm (use: personalign generate ... --persrm {config.out}/persrm)")
    return 0


def print_summary(summary: dict, before: str = "untrained") -> None:
    """Held-out accuracy per preference, `before` training (the untrained PersRM, or the one --init names) and
    after."""
    print(f"{'group':<8} {'preference':<44} {'pairs':>6} {before:>10} {'trained':>8}")
    for group in ("valid", "unseen"):
        after = summary["trained"][group]
        if after is None:
            continue
        before = summary["untrained"][group] or {"per_preference": {}, "accuracy": float("nan")}
        for preference, stats in after["per_preference"].items():
            was = before["per_preference"].get(preference, {}).get("accuracy", float("nan"))
            print(f"{group:<8} {preference[:44]:<44} {stats['pairs']:>6} {was:>10.3f} {stats['accuracy']:>8.3f}")
        print(f"{group:<8} {'(all)':<44} {after['pairs']:>6} {before['accuracy']:>10.3f} {after['accuracy']:>8.3f}")

