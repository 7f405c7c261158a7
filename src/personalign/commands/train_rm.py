"""`personalign train-rm`: train a PersRM on preference pairs (two stages; see training/trainer.py).

    personalign data synth --out runs/synth
    personalign train-rm --train runs/synth/pairs.jsonl --out runs/persrm --hold-out friendly,unfriendly
    personalign generate "Explain DNS" -p concise --persrm runs/persrm/persrm

A killed run continues with the same command and --resume. The table at the end gives held-out preference accuracy
before and after training.
"""

from ..training.config import MIXED_PRECISION, REFERENCES, TrainConfig

_DEFAULTS = TrainConfig(train="", out="")


def add_arguments(parser) -> None:
    d = _DEFAULTS
    parser.add_argument("--train", required=True, metavar="PAIRS.jsonl",
                        help='training pairs: {"preference", "prompt", "chosen", "rejected"} per line')
    parser.add_argument("--valid", default=None, metavar="PAIRS.jsonl",
                        help=f"held-out pairs (default: {d.valid_fraction:g} of --train, split by prompt)")
    parser.add_argument("--train-only", default=None, metavar="PAIRS.jsonl",
                        help="more pairs for training only, never held out (e.g. data synth's loop_pairs.jsonl); "
                             "those of --hold-out preferences or of held-out prompts are left out")
    parser.add_argument("--out", required=True, help="run directory: checkpoint, metrics.jsonl, persrm/")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after a kill")
    parser.add_argument("--hold-out", action="append", default=[], metavar="PREFERENCE",
                        help="keep this preference out of training and report it as unseen; repeatable or "
                             "comma-separated (e.g. a whole P-SOUPS axis: friendly,unfriendly)")
    parser.add_argument("--reference", choices=REFERENCES, default=d.reference,
                        help=f"what the frozen reference reads (default {d.reference}; see README)")
    parser.add_argument("--base", default=None, help="backbone: a local dir or hub id (default: embedded SmolLM2)")
    parser.add_argument("--beta", type=float, default=d.beta, help=f"DPO beta (default {d.beta:g})")
    parser.add_argument("--stage1-steps", type=int, default=d.stage1_steps,
                        help=f"steps of DPO on LoRA + head (default {d.stage1_steps})")
    parser.add_argument("--stage2-steps", type=int, default=d.stage2_steps,
                        help=f"steps on the head alone (default {d.stage2_steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"pairs per step (default {d.batch_size})")
    parser.add_argument("--grad-accum", type=int, default=d.grad_accum, help="micro-batches per step (default 1)")
    parser.add_argument("--lr-stage1", type=float, default=d.lr_stage1, help=f"default {d.lr_stage1:g}")
    parser.add_argument("--lr-stage2", type=float, default=d.lr_stage2, help=f"default {d.lr_stage2:g}")
    parser.add_argument("--head-dropout", type=float, default=d.head_dropout,
                        help=f"dropout on the head's input in training (default {d.head_dropout:g}; the release: 0.1)")
    parser.add_argument("--lora-r", type=int, default=d.lora_r, help=f"LoRA rank (default {d.lora_r})")
    parser.add_argument("--max-length", type=int, default=d.max_length,
                        help=f"tokens of prompt + response (default {d.max_length})")
    parser.add_argument("--valid-fraction", type=float, default=d.valid_fraction)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--eval-limit", type=int, default=d.eval_limit, help="held-out pairs per evaluation")
    parser.add_argument("--save-every", type=int, default=d.save_every)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=d.mixed_precision)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")


def config_from_args(args) -> TrainConfig:
    hold_out = tuple(dict.fromkeys(v.strip() for value in args.hold_out for v in value.split(",") if v.strip()))
    return TrainConfig(train=args.train, valid=args.valid, train_only=args.train_only, out=args.out,
                       hold_out=hold_out, base=args.base,
                       reference=args.reference, beta=args.beta, stage1_steps=args.stage1_steps,
                       stage2_steps=args.stage2_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                       lr_stage1=args.lr_stage1, lr_stage2=args.lr_stage2, head_dropout=args.head_dropout,
                       lora_r=args.lora_r, lora_alpha=2 * args.lora_r, max_length=args.max_length,
                       valid_fraction=args.valid_fraction,
                       eval_every=args.eval_every, eval_limit=args.eval_limit, save_every=args.save_every,
                       seed=args.seed, mixed_precision=args.mixed_precision, device=args.device)


def run(args) -> int:
    config = config_from_args(args)
    from . import quiet_loading
    from ..training.trainer import train_persrm

    quiet_loading()
    summary = train_persrm(config, resume=args.resume)
    print_summary(summary)
    print(f"PersRM saved to {config.out}/persrm (use: personalign generate ... --persrm {config.out}/persrm)")
    return 0


def print_summary(summary: dict) -> None:
    print(f"{'group':<8} {'preference':<44} {'pairs':>6} {'untrained':>10} {'trained':>8}")
    for group in ("valid", "unseen"):
        after = summary["trained"][group]
        if after is None:
            continue
        before = summary["untrained"][group] or {"per_preference": {}, "accuracy": float("nan")}
        for preference, stats in after["per_preference"].items():
            was = before["per_preference"].get(preference, {}).get("accuracy", float("nan"))
            print(f"{group:<8} {preference[:44]:<44} {stats['pairs']:>6} {was:>10.3f} {stats['accuracy']:>8.3f}")
        print(f"{group:<8} {'(all)':<44} {after['pairs']:>6} {before['accuracy']:>10.3f} {after['accuracy']:>8.3f}")

