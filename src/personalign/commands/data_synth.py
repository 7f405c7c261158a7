"""`personalign data synth`: preference pairs synthesized in the P-SOUPS manner (see data/synth.py).

    personalign data synth --out runs/synth                       # 160 HelpSteer prompts, six P-SOUPS + Janus
    personalign data synth --out runs/synth --free-text janus --free-per-prompt 3

Re-running the same command resumes: finished rollouts are skipped.
"""

from ..errors import PersonalignError

_FREE_TEXT_SETS = ("janus", "none")


def add_arguments(parser) -> None:
    from ..data.synth import PSOUPS_DIMENSIONS, SynthConfig

    d = SynthConfig()
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for rollouts.jsonl and pairs.jsonl")
    parser.add_argument("--prompts", default=d.prompts,
                        help=f"a prompt set or a JSONL file of prompts (default {d.prompts})")
    parser.add_argument("--limit", type=int, default=d.limit, help=f"first N prompts (default {d.limit})")
    parser.add_argument("--dimensions", default=",".join(PSOUPS_DIMENSIONS),
                        help="catalog dimensions judged by the offline judge, comma-separated ('' for none; "
                             "default: the six P-SOUPS ones)")
    parser.add_argument("--free-text", default="janus",
                        help="free-text preferences to draw from: janus (the 102 Janus examples), none, or a file "
                             "with one preference per line")
    parser.add_argument("--free-per-prompt", type=int, default=d.free_per_prompt,
                        help=f"free-text preferences drawn per prompt (default {d.free_per_prompt})")
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=d.temperature)
    parser.add_argument("--min-margin", type=float, default=d.min_margin,
                        help="keep a pair when the judge's best-worst gap is at least this many standard "
                             f"deviations (default {d.min_margin:g})")
    parser.add_argument("--loop-pairs", type=float, default=d.loop_pairs,
                        help="share of pairs that get a twin rejecting a looped copy of the chosen answer, written "
                             f"to loop_pairs.jsonl for train-rm --train-only (default {d.loop_pairs:g})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--data-dir", default=None, help="shared data directory (default: $PERSONALIGN_DATA or "
                                                         "../shared/data)")


def run(args) -> int:
    from pathlib import Path

    from .. import catalog
    from ..data.synth import PSOUPS_DIMENSIONS, SynthConfig, janus_preferences, synthesize

    dimensions = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    for name in dimensions:
        if catalog.lookup(name) is None or catalog.lookup(name).name not in PSOUPS_DIMENSIONS:
            raise PersonalignError(f"--dimensions: {name!r} is not one the offline judge scores (the six P-SOUPS "
                                   "dimensions); give other preferences as --free-text")
    dimensions = tuple(catalog.lookup(name).name for name in dimensions)
    if args.free_text == "janus":
        free_text = tuple(janus_preferences(args.data_dir))
    elif args.free_text == "none":
        free_text = ()
    elif Path(args.free_text).is_file():
        free_text = tuple(line.strip() for line in Path(args.free_text).read_text().splitlines() if line.strip())
        if not free_text:
            raise PersonalignError(f"{args.free_text}: no preferences (the file is empty)")
    else:
        raise PersonalignError(f"--free-text {args.free_text!r} is neither janus, none nor a file")
    config = SynthConfig(prompts=args.prompts, limit=args.limit, dimensions=dimensions, free_text=free_text,
                         free_per_prompt=args.free_per_prompt if free_text else 0,
                         max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                         min_margin=args.min_margin, loop_pairs=args.loop_pairs, batch_size=args.batch_size,
                         seed=args.seed, data_dir=args.data_dir)
    config.validate()
    from . import quiet_loading
    quiet_loading()
    from ..api import load_engine
    from ..evaluation.judges.offline import OfflineJudge
    from ..evaluation.judges.relevance import RelevanceJudge

    counts = synthesize(config, args.out, load_engine(persrm="untrained"), OfflineJudge(),
                        RelevanceJudge() if free_text else None)
    for name, value in counts.items():
        print(f"{value:>7}  {name}")
    print(f"wrote {args.out}/pairs.jsonl and {args.out}/loop_pairs.jsonl")
    return 0
