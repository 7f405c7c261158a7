"""PersRM pairs by label flipping from a `personalign data synth` run: each P-SOUPS pair whose rejected answer could
have been chosen, and the same two answers the other way round under the opposite end of its axis (where the judge
agrees), so that only the preference tells the two labels apart. MetaAlign's data flips the same way
(data/metaalign_synth.py); this writes the pairs for `train-rm` instead of as meta-prompts.

    .venv/bin/python scripts/flip_synth_pairs.py --synth runs/synth-tone-rm --out runs/rm-tone/pairs.jsonl
"""

import argparse
import json
from pathlib import Path

from personalign.data.metaalign_synth import flipped_labels
from personalign.data.synth import PAIRS, PSOUPS_DIMENSIONS
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.records import read_records

SIDES = (("chosen", "rejected"), ("rejected", "chosen"))
PER_ANSWER = ("", "_id", "_under", "_ends")  # the text, its rollout, the preference it was written under, its end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", required=True, help="a `personalign data synth` directory")
    parser.add_argument("--out", required=True, help="the pairs file to write (JSONL)")
    args = parser.parse_args()
    pairs = [p for p in read_records(Path(args.synth) / PAIRS) if p["preference"] in PSOUPS_DIMENSIONS]
    out = []
    for pair, flip in zip(pairs, flipped_labels(pairs, OfflineJudge())):
        if flip is not None:  # the rejected answer may be chosen, so the pair itself is clean too
            swapped = {side + field: pair[other + field] for side, other in SIDES for field in PER_ANSWER
                       if other + field in pair}
            out += [pair, dict(pair, **swapped, preference=flip[0], flipped_from=pair["preference"])]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as handle:
        handle.writelines(json.dumps(p) + "\n" for p in out)
    print(f"{len(out)} pairs ({len(out) // 2} flipped) written to {args.out}")


if __name__ == "__main__":
    main()
