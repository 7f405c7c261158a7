"""`personalign data synth`: preference pairs synthesized in the P-SOUPS manner (see data/synth.py).

    personalign data synth --out runs/synth                       # 160 HelpSteer prompts, six P-SOUPS + Janus
    personalign data synth --out runs/synth --free-text janus --free-per-prompt 3
    personalign data synth --out runs/synth --on-policy default    # + PAD's own failures, shipped PersRM
    personalign data synth --out runs/synth-meta --method meta-prompting --samples 3   # a MetaAlign policy's targets

Re-running the same command resumes: finished rollouts are skipped. Across processes, each decoding a share:
    torchrun --nproc_per_node 2 .venv/bin/personalign data synth --out runs/synth     # (GPUs: accelerate launch)
"""

from .flags import add_flags, flag_values
from ..errors import PersonalignError
from ..validation import read_nonblank_lines

FLAGS = ["prompts", "limit", "dimensions", "free_per_prompt", "max_new_tokens", "temperature", "method", "samples",
         "min_margin", "min_on_question", "loop_pairs", "offtopic_pairs", "on_policy", "on_policy_margin",
         "batch_size", "seed", "data_dir"]


def add_arguments(parser) -> None:
    from ..data.synth import SynthConfig

    parser.add_argument("--out", required=True, metavar="DIR", help="directory for rollouts.jsonl and pairs.jsonl")
    parser.add_argument("--free-text", default="janus",
                        help="free-text preferences to draw from: janus (the 102 Janus examples), all (Janus, "
                             "Amulet, MetaAligner and DSP's stated and implied user types: 141), multifaceted (all "
                             "and 200 Janus-style combinations, one example of each Janus dimension: 341), none, or "
                             "a file with one preference per line (default janus)")
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
    elif args.free_text == "all":
        from ..data.free_text import all_free_text
        free_text = tuple(all_free_text(args.data_dir))
    elif args.free_text == "multifaceted":
        from ..data.free_text import wide_free_text
        free_text = tuple(wide_free_text(args.data_dir))
    elif args.free_text == "none":
        free_text = ()
    elif Path(args.free_text).is_file():
        free_text = tuple(read_nonblank_lines(args.free_text, "--free-text file"))
        if not free_text:
            raise PersonalignError(f"{args.free_text}: no preferences (the file is empty)")
    else:
        raise PersonalignError(f"--free-text {args.free_text!r} is neither janus, all, multifaceted, none nor a file")
    if not free_text:
        values["free_per_prompt"] = 0
    from ..api import UNTRAINED, default_persrm, load_engine
    from ..models import resolve_model_source

    if values["on_policy"] == "default":
        values["on_policy"] = default_persrm(resolve_model_source(None))
    if values["on_policy"] == UNTRAINED:
        raise PersonalignError("--on-policy needs a trained PersRM: with the untrained one PAD answers as "
                               "prompting does")
    config = SynthConfig(**values, free_text=free_text)
    config.validate()
    if config.on_policy:
        from ..decoding.request import DEFAULT_END_OF_TURN
        from ..evaluation.identity import dir_identity
        from ..validation import check_model_dir
        check_model_dir(Path(config.on_policy), "--on-policy", persrm=True)
        # PAD's rule is part of how its rollouts were made: the end of turn's default changed once already
        config.on_policy_identity = f"{dir_identity(config.on_policy)}; end_of_turn={DEFAULT_END_OF_TURN}"
    from . import quiet_loading
    quiet_loading()
    from ..evaluation.judges.offline import OfflineJudge
    from ..evaluation.judges.relevance import RelevanceJudge

    from ..sharding import process_device

    engine = load_engine(persrm=config.on_policy or "untrained", device=process_device())
    counts = synthesize(config, args.out, engine, OfflineJudge(),
                        RelevanceJudge() if free_text or config.min_on_question else None)
    if counts:  # the first process's (several processes: torchrun or accelerate launch)
        for name, value in counts.items():
            print(f"{value:>7}  {name}")
        print(f"wrote {args.out}/pairs.jsonl and the twins for train-rm --train-only: loop_pairs.jsonl, "
              f"offtopic_pairs.jsonl{', onpolicy_pairs.jsonl' if config.on_policy else ''}")
    return 0
