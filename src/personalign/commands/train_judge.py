"""`personalign train-judge`: train the helpfulness / harmless reward-model judges on the HH pairs.

Each preference gets its own directory under --out (default $PERSONALIGN_HOME/judges), loadable as the judge
`rm:DIR`. The table at the end gives each judge's accuracy on held-out prompts beside "the longer answer wins".
"""

from pathlib import Path

from ..data.pairs import PREFERENCES
from ..errors import PersonalignError


def add_arguments(parser) -> None:
    """The train-judge flags."""
    from ..evaluation.judges.trained import EPOCHS

    parser.add_argument("--preference", action="append", default=[],
                        help=f"{' or '.join(PREFERENCES)}; repeatable or comma-separated (default: both)")
    parser.add_argument("--out", default=None,
                        help="directory for the judges, one subdirectory per preference "
                             "(default: $PERSONALIGN_HOME/judges)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"passes over the train pairs (default {EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pairs of each preference")
    parser.add_argument("--data-dir", default=None, help="shared data directory (default: $PERSONALIGN_DATA or "
                                                         "../shared/data)")


def run(args) -> int:
    """Train one judge per requested preference and print the held-out accuracy table."""
    preferences = _preferences(args.preference)
    if args.epochs < 1:
        raise PersonalignError("--epochs must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise PersonalignError("--limit must be >= 1")
    from . import quiet_loading
    from ..evaluation.judges.trained import MiniLMEmbedder, train_reward_judge
    from ..models import personalign_home

    out = Path(args.out).expanduser() if args.out else personalign_home() / "judges"
    quiet_loading()
    embedder = MiniLMEmbedder()  # loaded once for all preferences
    rows = []
    for preference in preferences:
        metrics = train_reward_judge(preference, out / preference, data_dir=args.data_dir, epochs=args.epochs,
                                     seed=args.seed, limit=args.limit, embedder=embedder)
        rows.append((preference, metrics, out / preference))
    print(f"{'preference':<12} {'train':>6} {'valid':>6} {'trained':>8} {'longer wins':>12}  judge")
    for preference, m, directory in rows:
        print(f"{preference:<12} {m['train_pairs']:>6} {m['valid_pairs']:>6} {m['valid_accuracy']:>8.3f} "
              f"{m['length_baseline_accuracy']:>12.3f}  rm:{directory}")
    return 0


def _preferences(values: list[str]) -> list[str]:
    chosen = [v.strip() for value in values for v in value.split(",") if v.strip()] or list(PREFERENCES)
    for preference in chosen:
        if preference not in PREFERENCES:
            raise PersonalignError(f"unknown --preference {preference!r}; choose from {', '.join(PREFERENCES)}")
    return list(dict.fromkeys(chosen))  # a preference named twice is trained once
