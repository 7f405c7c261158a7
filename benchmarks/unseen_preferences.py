"""MetaAlign on preferences its training never saw: win rates against preference prompting on a hold-out run's
held-out P-SOUPS axis and held-out free-text preferences.

    personalign data metaalign --out runs/metaalign-holdout --synth runs/synth \
        --hold-out psoups:elementary,psoups:expert --hold-out-free-text 0.2
    personalign train-policy --data runs/metaalign-holdout --out runs/policy-holdout --recipe sft
    .venv/bin/python benchmarks/unseen_preferences.py --data runs/metaalign-holdout \
        --policy runs/policy-holdout/policy --out runs/unseen

The held-out preferences are read from the data's unseen.jsonl: the axis as its catalog names, judged by the offline
judge on koala_eval_50; the free texts as User Info (and in PAD's template for prompting), judged by the relevance
judge on the first `--free-limit` prompts. Two `personalign eval` runs (OUT/axis, OUT/free-text; re-running resumes
them), then one table: per method, the win rate against prompting on each held-out dimension and over the free texts
(ties half), with how often its answers loop or echo the template, how often one is word for word its answer under
another held-out preference, and how close they stay to the question (the relevance judge likes answers that talk
about the preference; this shows whether they still answer).
"""

import argparse
import csv
from collections import defaultdict
from pathlib import Path
from statistics import fmean

from personalign.evaluation.config import EvalConfig
from personalign.evaluation.harness import run_eval
from personalign.records import read_records

BASELINE = "prompt"
CHECKS = ("loops", "template_echo", "same_answer", "on_question")


def held_out(data: Path) -> tuple[list[str], list[str]]:
    """(held-out P-SOUPS dimensions, held-out free texts) of a `data metaalign` directory's unseen.jsonl."""
    dims, free = {}, {}
    for record in read_records(data / "unseen.jsonl"):
        kind, _, name = record["preference"].partition(":")
        if kind == "psoups":
            dims[name] = True
        elif kind == "free":
            free[record["user_info"]] = True
    if not dims and not free:
        raise SystemExit(f"{data}/unseen.jsonl holds no held-out preferences: build the data with --hold-out")
    return list(dims), list(free)


def evaluate(args, out: Path, preferences: list[str], judge: str, limit: int | None) -> list[dict]:
    config = EvalConfig.from_dict(dict(
        methods=["prompt", *args.methods.split(",")], preferences=preferences, judges=[judge], baseline=BASELINE,
        prompts=args.prompts, limit=limit, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        policy=args.policy, beta=[] if args.beta is None else [args.beta], out=str(out)))
    run_eval(config, progress=not args.quiet)
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def summary(axis: list[dict], free: list[dict], dims: list[str]) -> list[tuple]:
    """Per method: the win rate on each held-out dimension, the mean over the free texts, then the mean of each of
    CHECKS (None where no row has it)."""
    wins, free_wins = defaultdict(dict), defaultdict(list)
    checks = defaultdict(lambda: defaultdict(list))
    for r in axis + free:
        if r["metric"] in CHECKS:
            checks[r["method"]][r["metric"]].append(float(r["value"]))
    for r in axis:
        if r["metric"] == "win_rate":
            wins[r["method"]][r["dimension"]] = float(r["value"])
    for r in free:
        if r["metric"] == "win_rate":
            free_wins[r["method"]].append(float(r["value"]))
    return [(method, [wins[method].get(d) for d in dims], fmean(free_wins[method]) if free_wins[method] else None,
             *(fmean(checks[method][m]) if checks[method][m] else None for m in CHECKS))
            for method in dict.fromkeys(r["method"] for r in axis + free)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="the hold-out run's `data metaalign` directory")
    parser.add_argument("--policy", required=True, help="the policy trained on that data (RUN/policy)")
    parser.add_argument("--methods", default="meta-prompting,metaalign", help="compared with prompting")
    parser.add_argument("--out", default="runs/unseen", type=Path)
    parser.add_argument("--prompts", default="koala_eval_50")
    parser.add_argument("--limit", type=int, default=None, help="prompts for the held-out axis")
    parser.add_argument("--free-limit", type=int, default=20, help="prompts for each held-out free text")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--beta", type=float, default=None, help="the guided methods' beta (metaalign-cfg; none: "
                        "its own)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    dims, free = held_out(args.data)
    axis = evaluate(args, args.out / "axis", dims, "offline", args.limit) if dims else []
    free_rows = evaluate(args, args.out / "free-text", free, "relevance", args.free_limit) if free else []
    print(f"win rate against {BASELINE} (ties half) on preferences the policy never saw")
    free_column = [f"{len(free)} free texts"] if free else []
    header = ["method", *dims, *free_column, "loops", "echoes template", "same answer under another preference",
              "on question"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for method, rates, free_rate, *checks in summary(axis, free_rows, dims):
        values = (*rates, *([free_rate] if free else []), *checks)
        specs = [".2f"] * (len(values) - len(checks)) + [".1%"] * (len(checks) - 1) + [".2f"]
        cells = ["" if v is None else format(v, spec) for v, spec in zip(values, specs)]
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
