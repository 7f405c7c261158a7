"""Does a reward read which end of the style axis the user asked for? Two-option items for `personalign
eval-choices`, made from an evaluation run's answers:

    .venv/bin/python benchmarks/tone_choices.py --eval runs/eval-six --out runs/tone_choices.jsonl
    .venv/bin/personalign eval-choices --choices runs/tone_choices.jsonl [--persrm DIR]

For each prompt, the answers the run wrote under `friendly` and `unfriendly` (every method's, failures left out)
give the two the sentiment judge (VADER) tells furthest apart; where they differ by at least --min-gap they become
two items with the same two options: under the friendly preference the warmer is right, under the unfriendly one
the colder. Both options are cut to the same number of words, so that length decides neither. A reward that
scores tone without reading the preference gets one group right and the other wrong.
"""

import argparse
import json
from pathlib import Path

from personalign.answer_checks import degenerate
from personalign.catalog import lookup
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.records import read_records

AXIS = ("friendly", "unfriendly")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", required=True, help="a `personalign eval` directory with friendly/unfriendly runs")
    parser.add_argument("--out", required=True, help="the choices file to write (JSONL)")
    parser.add_argument("--min-gap", type=float, default=0.8, help="least VADER difference between the two options")
    args = parser.parse_args()
    by_prompt = {}
    for record in read_records(Path(args.eval) / "generations.jsonl"):
        if record["preference"] in AXIS and not degenerate(record["text"]):
            by_prompt.setdefault(record["prompt"], []).append(record["text"])
    judge, items = OfflineJudge(), []
    for prompt, texts in by_prompt.items():
        warmth = judge.score("friendly", [prompt] * len(texts), texts)
        order = sorted(range(len(texts)), key=warmth.__getitem__)
        if warmth[order[-1]] - warmth[order[0]] < args.min_gap:
            continue
        warm, cold = texts[order[-1]].split(), texts[order[0]].split()
        words = min(len(warm), len(cold))
        options = [" ".join(warm[:words]), " ".join(cold[:words])]
        items += [dict(preference=lookup(dim).text, prompt=prompt, options=options, answer=right, group=dim)
                  for right, dim in enumerate(AXIS)]
    with open(args.out, "w") as out:
        out.writelines(json.dumps(item) + "\n" for item in items)
    print(f"{len(items)} items ({len(items) // 2} prompts) written to {args.out}")


if __name__ == "__main__":
    main()
