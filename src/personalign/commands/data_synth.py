"""`personalign data synth`: preference pairs synthesized in the P-SOUPS manner (see data/synth.py).

    personalign data synth --out runs/synth                       # 160 HelpSteer prompts, six P-SOUPS + Janus
    personalign data synth --out runs/synth --free-text janus --free-per-prompt 3

Re-running the same command resumes: finished rollouts are skipped. Across processes, each decoding a share:
    torchrun --nproc_per_node 2 .venv/bin/personalign data synth --out runs/synth     # (GPUs: accelerate launch)
"""

from .flags import add_flags, flag_values
from ..errors import PersonalignError
from ..validation import read_text_lines

FLAGS = ["prompts", "limit", "dimensions", "free_per_prompt", "max_new_tokens", "temperature", "min_margin",
         "min_on_question", "loop_pairs", "batch_size", "seed", "data_dir"]


def add_arguments(parser) -> None:
    from ..data.synth import SynthConfig

    parser.add_argument("--out", required=True, metavar="DIR", help="directory for rollouts.jsonl and pairs.jsonl")
    parser.add_argument("--free-text", default="janus",
                        help="free-text preferences to draw from: janus (the 102 Janus examples), none, or a file "
                             "with one preference per line (default janus)")
    add_flags(parser, SynthConfig, FLAGS)


def run(args) -> int:
    from pathlib import Path

    from .. import catalog
    from ..data.synth import PSOUPS_DIMENSIONS, SynthConfig, janus_preferences, synthesize

    values = flag_values(args, SynthConfig, FLAGS)
    for name in values["dimensions"]:
        if catalog.lookup(name) is None or catalog.lookup(name).name not in PSOUPS_DIMENSIONS:
            raise PersonalignError(f"--dimensions: {name!r} is not one the offline judge scores (the six P-SOUPS "
                                   "dimensions); give other preferences as --free-text")
    values["dimensions"] = tuple(catalog.lookup(name).name for name in values["dimensions"])
    if args.free_text == "janus":
        free_text = tuple(janus_preferences(args.data_dir))
    elif args.free_text == "none":
        free_text = ()
    elif Path(args.free_text).is_file():
        free_text = tuple(line.strip() for line in read_text_lines(args.free_text, "--free-text file") if line.strip())
        if not free_text:
            raise PersonalignError(f"{args.free_text}: no preferences (the file is empty)")
    else:
        raise PersonalignError(f"--free-text {args.free_text!r} is neither janus, none nor a file")
    if not free_text:
        values["free_per_prompt"] = 0
    config = SynthConfig(**values, free_text=free_text)
    config.validate()
    from . import quiet_loading
    quiet_loading()
    from ..api import load_engine
    from ..evaluation.judges.offline import OfflineJudge
    from ..evaluation.judges.relevance import RelevanceJudge

    from ..sharding import process_device

    counts = synthesize(config, args.out, load_engine(persrm="untrained", device=process_device()), OfflineJudge(),
                        RelevanceJudge() if free_text or config.min_on_question else None)
    if counts:  # the first process's (several processes: torchrun or accelerate launch)
        for name, value in counts.items():
            print(f"{value:>7}  {name}")
        print(f"wrote {args.out}/pairs.jsonl and {args.out}/loop_pairs.jsonl")
    return 0
