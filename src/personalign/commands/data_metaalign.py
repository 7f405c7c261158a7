"""`personalign data metaalign`: MetaAlign's training data (data/metaalign.py), built by label flipping from the
shared data sets: DPO pairs under three-tier meta-prompts and SFT examples, split by prompt.

    personalign data metaalign --out runs/metaalign
    personalign data metaalign --out runs/metaalign-holdout --hold-out dsp:literature,priority:formal
    personalign data metaalign --out runs/metaalign --synth runs/synth --max-per-preference 1500
    personalign data metaalign --out runs/metaalign --synth runs/synth --constraints runs/constraints
    personalign data metaalign --out runs/ma --sources synth,dsp:priority --synth runs/synth-a,runs/synth-b --twins
"""

from .flags import add_flags, flag_values

FLAGS = ["out", "sources", "synth", "twins", "constraints", "hold_out", "hold_out_free_text", "max_per_preference", "valid_fraction", "seed",
         "sft_targets", "data_dir"]


def add_arguments(parser) -> None:
    from ..data.metaalign import MetaDataConfig

    add_flags(parser, MetaDataConfig, FLAGS)


def run(args) -> int:
    from ..data.metaalign import SUBSETS, MetaDataConfig, write

    config = MetaDataConfig(**flag_values(args, MetaDataConfig, FLAGS))
    judge = None
    if config.synth:
        from ..evaluation.judges.offline import OfflineJudge
        judge = OfflineJudge()
    summary = write(config, judge)  # split_pairs checks the fraction
    print(f"{'subset':<10} {'train':>7} {'valid':>7} {'unseen':>7}")
    for subset in SUBSETS:
        counts = summary["per_subset"][subset]
        print(f"{subset:<10} {counts.get('train', 0):>7} {counts.get('valid', 0):>7} {counts.get('unseen', 0):>7}")
    print(f"{'all':<10} {summary['pairs']['train']:>7} {summary['pairs']['valid']:>7} {summary['pairs']['unseen']:>7}")
    print(f"{summary['distinct_meta_prompts']} distinct meta-prompts ({summary['distinct_preference_ids']} preference "
          f"ids) over {summary['prompts']} prompts; {summary['explicit_pairs']} explicit and "
          f"{summary['implicit_pairs']} implicit pairs; free-text preferences {summary['free_text_preferences']}")
    print(f"SFT examples: {summary['sft_examples']['train']} train, {summary['sft_examples']['valid']} valid "
          f"({config.sft_targets} targets; {summary['shared_sft_targets']} training answers are chosen under more "
          "than one preference of their prompt)")
    print(f"wrote {args.out}/train.jsonl, valid.jsonl, unseen.jsonl, sft_train.jsonl, sft_valid.jsonl, stats.json")
    return 0
