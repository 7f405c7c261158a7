"""`personalign data constraints`: pairs and a held-out multiple-choice set for content and constraint preferences
("I'm vegetarian", "I don't drive"; see data/constraints.py).

    personalign data constraints --out runs/constraints
    personalign train-rm --train runs/synth/pairs.jsonl --train-only runs/constraints/pairs.jsonl --out runs/persrm
    personalign eval-choices --choices runs/constraints/choices.jsonl --persrm runs/persrm/persrm
    personalign eval-choices --choices runs/constraints/choices_minimal.jsonl --persrm runs/persrm/persrm

Re-running the same command resumes: answers already written are skipped.
"""

from .flags import add_flags, flag_values

FLAGS = ["samples", "pairs_per_question", "item_pairs_per_question", "options", "hold_out_every", "max_new_tokens",
         "temperature", "batch_size", "seed"]


def add_arguments(parser) -> None:
    from ..data.constraints import ConstraintConfig

    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for rollouts.jsonl, pairs.jsonl, choices.jsonl and choices_minimal.jsonl")
    add_flags(parser, ConstraintConfig, FLAGS)


def run(args) -> int:
    from ..data.constraints import ConstraintConfig, write

    config = ConstraintConfig(**flag_values(args, ConstraintConfig, FLAGS))
    config.validate()
    from . import quiet_loading
    quiet_loading()
    from ..api import load_engine
    from ..sharding import process_device

    counts = write(config, args.out, load_engine(persrm="untrained", device=process_device()))
    if counts:  # the first process's (several processes: torchrun or accelerate launch)
        for name, value in counts.items():
            print(f"{value:>7}  {name}")
        print(f"wrote {args.out}/pairs.jsonl, {args.out}/choices.jsonl and {args.out}/choices_minimal.jsonl")
    return 0
