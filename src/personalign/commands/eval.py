"""`personalign eval`: compare personalization methods on prompts x preferences with judges.

    personalign eval --methods base,prompt,pad,best-of-n,args --limit 20 --max-new-tokens 64 --out eval-out
    personalign eval --config eval.yaml          # the same fields in YAML; flags given override the file
    personalign eval --methods pad --beta 0,0.5,1,2 --preferences concise,expert --out sweep

Re-running the same command resumes: finished answers and judgments are skipped.
"""

from ..errors import PersonalignError
from ..evaluation.config import METHODS, EvalConfig

LIST_FIELDS = ("methods", "preferences", "judges", "beta")


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE.yaml", help="read the fields below from a YAML file")
    parser.add_argument("--methods", help=f"comma-separated, from: {', '.join(METHODS)} (default base,prompt,pad)")
    parser.add_argument("--preferences", help="'|'-separated (texts may contain commas): catalog names, free texts "
                                              "or mixes like concise=0.7,friendly=0.3 (default: the six P-SOUPS)")
    parser.add_argument("--judges", help="comma-separated: offline, hf:PATH[@dims], rm:DIR, llm:MODEL@URL "
                                         "(default offline)")
    parser.add_argument("--prompts", help="a prompt set (koala_eval_50, koala, helpsteer, hh_rlhf, alpaca_eval, "
                                          "mt_bench) or a JSONL file of {\"prompt\": ...} (default koala_eval_50)")
    parser.add_argument("--limit", type=int, help="use the first N prompts")
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--beta", help="comma-separated; several values make a beta sweep (default 1.0)")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--baseline", help="method that win rates are measured against (default base)")
    parser.add_argument("--best-of-n", type=int, help="samples per best-of-n answer (default 4)")
    parser.add_argument("--temperature", type=float, help="best-of-n sampling temperature (default 0.7)")
    parser.add_argument("--reward-judge", help="judge steering args and best-of-n (default offline)")
    parser.add_argument("--soups", help="LoRA adapter per dimension for the soups method: concise=DIR,friendly=DIR")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", help="output directory (default eval-out)")
    parser.add_argument("--persrm", help="PersRM for pad/fusion: a saved PersRM dir or 'untrained' (default: the trained one shipped for the embedded model, else untrained)")
    parser.add_argument("--data-dir", help="the shared data directory (default $PERSONALIGN_DATA or ../shared/data)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args) -> EvalConfig:
    raw = {}
    if args.config:
        raw = EvalConfig.from_yaml(args.config).__dict__
    for name in EvalConfig.__dataclass_fields__:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "soups":
            value = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
        if name in LIST_FIELDS:
            value = [v.strip() for v in value.split("|" if name == "preferences" else ",") if v.strip()]
            if name == "beta":
                try:
                    value = [float(v) for v in value]
                except ValueError:
                    raise PersonalignError(f"--beta: give numbers separated by commas, got {args.beta!r}") from None
        raw[name] = value
    return EvalConfig.from_dict(raw, where="--config" if args.config else "flags")


def run(args) -> int:
    from ..commands import quiet_loading
    from ..evaluation.harness import run_eval
    config = config_from_args(args)
    quiet_loading()
    out = run_eval(config, progress=not args.quiet)
    print((out / "results.md").read_text())
    print(f"wrote {out}/generations.jsonl, judgments.jsonl, results.csv, results.md and plots")
    return 0
