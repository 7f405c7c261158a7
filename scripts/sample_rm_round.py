"""The training sample of a further PersRM round (train-rm --init): the earlier round's valid split stays valid, and
seeded samples of the rest of the judged pairs, of the loop twins and of the off-topic twins keep what that round
learned while the new on-policy pairs (given to train-rm as --train-only) teach what it got wrong.

    python scripts/sample_rm_round.py --valid runs/rm-round2/valid.jsonl --out runs/rm-round3 --seed 3
"""

import argparse
import random
from pathlib import Path


def lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="runs/rm-all/pairs.jsonl", help="all judged pairs")
    parser.add_argument("--valid", required=True, help="the earlier round's valid split (kept out of train)")
    parser.add_argument("--loop", default="runs/rm-all/loop_half.jsonl", help="loop twins")
    parser.add_argument("--offtopic", default="runs/rm-all/offtopic_pairs.jsonl", help="off-topic twins")
    parser.add_argument("--train", type=int, default=1200, help="judged pairs to sample")
    parser.add_argument("--twins", type=int, default=400, help="loop twins and off-topic twins to sample, each")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    valid = set(lines(args.valid))
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, source, count in (("train", [l for l in lines(args.pairs) if l not in valid], args.train),
                                ("loop", lines(args.loop), args.twins), ("offtopic", lines(args.offtopic), args.twins)):
        (out / f"{name}.jsonl").write_text("\n".join(rng.sample(source, count)) + "\n")
        print(f"{out}/{name}.jsonl: {count} of {len(source)}")
    (out / "valid.jsonl").write_text("\n".join(lines(args.valid)) + "\n")


if __name__ == "__main__":
    main()
