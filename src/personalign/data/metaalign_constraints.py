"""MetaAlign pairs from a `personalign data constraints` run (its pairs.jsonl): each constraint's statement as User
Info, the respecting answer chosen. The run's pairs already carry their label flips (the same two answers in the
other order under a constraint that rules out the first one's item), so the policy meets one pair of answers
under opposite labels, told apart only by the meta-prompt.

The id is "constraint:" + the constraint's name, which hold-outs name; the catalog's first statement of a
constraint counts as explicit ("I'm vegetarian."), the others as implied by a fact ("I stopped eating meat…").
"""

from pathlib import Path

from ..errors import PersonalignError
from ..meta_prompt import DEFAULT_SYSTEM_INFO
from ..records import read_records
from .constraint_catalog import CONSTRAINTS
from .constraints import PAIRS


def constraint_pairs(directory) -> list:
    """MetaPairs from `directory`/pairs.jsonl (see the module docstring)."""
    from .metaalign import MetaPair

    path = Path(directory) / PAIRS
    if not path.is_file():
        raise PersonalignError(f"--constraints {directory}: no {PAIRS} (run `personalign data constraints --out "
                               f"{directory}`)")
    first = {c.name: c.texts[0] for c in CONSTRAINTS}
    return [MetaPair(f"constraint:{r['constraint']}", DEFAULT_SYSTEM_INFO, r["preference"], r["prompt"], r["chosen"],
                     r["rejected"], "diverse", first.get(r["constraint"], r["preference"]) == r["preference"])
            for r in read_records(path)]
