"""Run by tests/test_multiprocess.py, alone or under torchrun: pair synthesis into DIR/OUT with the
stand-in decoder of tests/test_synth.py (`--fail-after N`: the process dies after N batches, as a kill would)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from personalign.data.synth import SynthConfig, synthesize  # noqa: E402
from personalign.evaluation.judges.offline import OfflineJudge  # noqa: E402
from personalign.evaluation.judges.relevance import RelevanceJudge  # noqa: E402
from personalign.evaluation.judges.trained import HashingEmbedder  # noqa: E402
from test_synth import StandInEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path, help="holds prompts.jsonl")
    parser.add_argument("out")
    parser.add_argument("--fail-after", type=int, default=None)
    args = parser.parse_args()
    config = SynthConfig(prompts=str(args.dir / "prompts.jsonl"), limit=None, dimensions=("concise", "informative"),
                         free_text=("I love cooking vegetables",), free_per_prompt=1, batch_size=2, min_margin=0.5,
                         min_on_question=0.0)
    synthesize(config, args.dir / args.out, StandInEngine(args.fail_after), OfflineJudge(),
               RelevanceJudge(HashingEmbedder()), progress=False)


if __name__ == "__main__":
    main()
