"""`personalign eval`: compare personalization methods on prompts x preferences with judges.

    personalign eval --methods base,prompt,pad,best-of-n,args --limit 20 --max-new-tokens 64 --out eval-out
    personalign eval --config eval.yaml          # the same fields in YAML; flags given override the file
    personalign eval --methods pad --beta 0,0.5,1,2 --preferences concise,expert --out sweep

Re-running the same command resumes: finished answers and judgments are skipped.
"""

from dataclasses import fields

from .flags import add_flags
from ..evaluation.config import EvalConfig

FLAGS = [f.name for f in fields(EvalConfig)]


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="read the fields below from a YAML file; flags given "
                                                              "override it")
    add_flags(parser, EvalConfig, FLAGS, unset_default=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args) -> EvalConfig:
    raw = EvalConfig.from_yaml(args.config).__dict__ if args.config else {}
    raw |= {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    return EvalConfig.from_dict(raw, where="--config" if args.config else "flags")


def run(args) -> int:
    from ..commands import quiet_loading
    from ..evaluation.harness import run_eval
    config = config_from_args(args)
    quiet_loading()
    out = run_eval(config, progress=not args.quiet)
    if out is None:  # not the first of several processes: it reports
        return 0
    print((out / "results.md").read_text())
    print(f"wrote {out}/generations.jsonl, judgments.jsonl, results.csv, results.md and plots")
    return 0
