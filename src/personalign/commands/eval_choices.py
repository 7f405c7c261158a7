"""`personalign eval-choices`: how often preference prompting's log-likelihood, the PersRM's summed reward and
PAD's summed score pick the option that respects the preference (see evaluation/choices.py).

    personalign data constraints --out runs/constraints
    personalign eval-choices --choices runs/constraints/choices.jsonl                      # the shipped PersRM
    personalign eval-choices --choices runs/constraints/choices.jsonl --persrm runs/persrm/persrm --json
"""

import json


def add_arguments(parser) -> None:
    parser.add_argument("--choices", required=True, metavar="FILE",
                        help="JSONL: preference, prompt, options, answer (index of the right option), group")
    parser.add_argument("--persrm", default=None,
                        help="a saved PersRM directory, or 'untrained' (default: the one shipped for the base)")
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the reward in PAD's score (default 1)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="also write each item with its options' scores, one JSON object per line")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args) -> int:
    from tqdm import tqdm

    from ..evaluation.choices import LEAD, SCORES, accuracy_table, read_choices, score_items
    from ..validation import check_beta

    items = read_choices(args.choices)
    check_beta(args.beta)
    from . import quiet_loading
    quiet_loading()
    from ..api import load_persrm
    from ..models import load_causal_lm, resolve_model_source
    from ..records import write_records_atomic
    from ..training.answer_rewards import AnswerScorer

    source = resolve_model_source(args.base)
    backbone, tokenizer = load_causal_lm(source, device=args.device, dtype=args.dtype)
    persrm = load_persrm(args.persrm, backbone, source, device=args.device, dtype=args.dtype)
    with tqdm(total=len(items), desc="items", unit="item", disable=args.json) as bar:
        scored = score_items(items, AnswerScorer(persrm, tokenizer), args.beta, progress=lambda: bar.update(1))
    if args.out:
        from pathlib import Path
        write_records_atomic(Path(args.out), scored)
    rows = accuracy_table(scored)
    if args.json:
        print(json.dumps({"beta": args.beta, "persrm": args.persrm or "default", "rows": rows}, indent=2))
        return 0
    columns = (*SCORES, LEAD)
    print(f"{'group':<10} {'items':>6} {'chance':>7} " + " ".join(f"{name:>24}" for name in columns))
    for row in rows:
        print(f"{row['group']:<10} {row['items']:>6} {row['chance']:>7.3f} "
              + " ".join(f"{_with_interval(row, name):>24}" for name in columns))
    print(f"(95% intervals: a bootstrap over constraints, or over items that name none; {LEAD}: the reward's lead in "
          "accuracy)")
    return 0


def _with_interval(row: dict, name: str) -> str:
    """An accuracy, or the signed lead, with its interval."""
    from ..evaluation.choices import LEAD

    sign = "+" if name == LEAD else ""
    low, high = row[f"{name}_interval"]
    return f"{row[name]:{sign}.3f} [{low:{sign}.2f}, {high:{sign}.2f}]"
