"""A check of the offline judge: win rates against a baseline with the preference texts' own words struck from both
answers before judging.

    .venv/bin/python benchmarks/struck_words.py runs/eval-v7 [--baseline prompt]

VADER scores the word "friendly" as warm and "unfriendly" as cold, and a word count counts "concise", so an answer
that names its preference ("I am ready to provide a response that is unfriendly") is judged for naming it. This
strikes every content word of the six P-SOUPS preference texts ("friendly", "witty", "unfriendly", "PhD", …) from
every answer of a `personalign eval` run, judges both sides again with the offline judge, and prints, per method
and beta, the win rate against the baseline on each preference's own dimension (ties count half), and how many
answers named a word of their own preference (the baseline's row: only that).
"""

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from personalign.catalog import lookup
from personalign.evaluation.judges.offline import OfflineJudge

DIMENSIONS = ("elementary", "expert", "concise", "informative", "friendly", "unfriendly")
# the texts' function words, and the instruction's own ("generate a response"), which name no preference
NAMES_NOTHING = {"a", "an", "and", "any", "be", "being", "by", "can", "could", "easily", "field", "generate", "in",
                 "information", "is", "like", "missing", "of", "only", "point", "response", "school", "specific",
                 "student", "that", "the", "to", "understood", "very", "without"}


def preference_words(dimension: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", lookup(dimension).text.lower()) if w not in NAMES_NOTHING}


def words_pattern(words) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(sorted(words)) + r")\b", re.IGNORECASE)


STRUCK = set().union(*(preference_words(d) for d in DIMENSIONS))
PATTERN = words_pattern(STRUCK)
OWN = {dim: words_pattern(preference_words(dim)) for dim in DIMENSIONS}  # an answer naming its own preference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a personalign eval --out directory")
    parser.add_argument("--baseline", default="prompt")
    args = parser.parse_args()
    records = [json.loads(line) for line in (Path(args.run) / "generations.jsonl").read_text().splitlines()]
    answers = defaultdict(dict)  # (method, beta) -> (preference, prompt id) -> text
    for r in records:
        if r["preference"] in DIMENSIONS:
            answers[(r["method"], r["beta"])][(r["preference"], r["prompt_id"])] = r["text"]
    [baseline] = [answers[k] for k in answers if k[0] == args.baseline] or [None]
    if baseline is None:
        parser.error(f"{args.run} has no answers of the baseline {args.baseline!r}")
    judge = OfflineJudge()
    print(f"struck: {', '.join(sorted(STRUCK))}")
    print(f"{'method':<16} {'beta':>5} " + " ".join(f"{d[:11]:>11}" for d in DIMENSIONS) + "  (win, named own)")
    for (method, beta), texts in answers.items():
        cells = []
        for dim in DIMENSIONS:
            keys = sorted(k for k in texts if k[0] == dim and k in baseline)
            named = sum(bool(OWN[dim].search(texts[k])) for k in keys)
            win = "  –"  # the baseline's own row: how often it names its preference, no win rate
            if method != args.baseline:
                ours, theirs = ([PATTERN.sub("", side[k]) for k in keys] for side in (texts, baseline))
                a, b = (judge.score(dim, [""] * len(keys), side) for side in (ours, theirs))
                win = f"{sum((x > y) + 0.5 * (x == y) for x, y in zip(a, b)) / max(len(keys), 1):.2f}"
            cells.append(f"{win} {named:>2}/{len(keys):<3}")
        print(f"{method:<16} {beta:>5g} " + " ".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    main()
