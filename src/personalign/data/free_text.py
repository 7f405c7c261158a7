"""Free-text preferences for `data synth --free-text all`: every stated preference the shared data holds beyond the
six P-SOUPS dimensions (which the offline judge scores), in a stable order without repeats.

    Janus      the 102 example preferences of its multifaceted taxonomy
    Amulet     its eight preferences ("Your answer should be creative as much as possible.")
    MetaAligner  its objectives ("The response should avoid content that is offensive, ...")
    DSP        its four user types, stated ("I am an academic: ...") and implied by a background (three each)

and for `--free-text multifaceted`, Janus-style combinations: Janus writes each of its system messages from one
preference per dimension of its taxonomy (style, background knowledge, informativeness, harmlessness), so one
example of each, drawn with a fixed seed, makes a multifaceted preference of the same shape.
"""

import random

from .. import catalog
from . import read_shared_json
from .converters import DSP_PREFERENCES
from .metaalign import PERSONAS
from .synth import janus_preferences

JANUS_DIMENSIONS = ("Style", "Background knowledge", "Informativeness", "Harmlessness")
MULTIFACETED = 200


def all_free_text(data_dir=None) -> list[str]:
    amulet = [d.text for d in catalog.DIMENSIONS if d.source == "Amulet"]
    objectives = read_shared_json("preference_dimension_texts.json", data_dir)["metaaligner_objectives"]["objectives"]
    dsp = [*DSP_PREFERENCES.values(), *(text for texts in PERSONAS.values() for text in texts)]
    return list(dict.fromkeys([*janus_preferences(data_dir), *amulet, *objectives.values(), *dsp]))


def multifaceted_preferences(count: int = MULTIFACETED, seed: int = 0, data_dir=None) -> list[str]:
    """`count` distinct Janus-style preferences, each one example of every Janus dimension ("Style: Evocative
    title. Background knowledge: ... Harmlessness: ..."), the same for the same seed."""
    tree = read_shared_json("janus/multifaceted_preference_taxonomy_sample.json", data_dir)["tree"]
    pools = [[text for texts in tree[dim].values() for text in texts] for dim in JANUS_DIMENSIONS]
    rng, chosen = random.Random(seed), {}
    while len(chosen) < count:  # 25^4 combinations: repeats are rare, but skipped
        text = " ".join(f"{dim}: {rng.choice(pool).rstrip('.')}." for dim, pool in zip(JANUS_DIMENSIONS, pools))
        chosen.setdefault(text, None)
    return list(chosen)


def wide_free_text(data_dir=None) -> list[str]:
    """Every stated preference of the shared data (`all_free_text`) and 200 multifaceted ones."""
    return [*all_free_text(data_dir), *multifaceted_preferences(data_dir=data_dir)]
