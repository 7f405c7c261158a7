"""Free-text preferences for `data synth --free-text all`: every stated preference the shared data holds beyond the
six P-SOUPS dimensions (which the offline judge scores), in a stable order without repeats.

    Janus      the 102 example preferences of its multifaceted taxonomy
    Amulet     its eight preferences ("Your answer should be creative as much as possible.")
    MetaAligner  its objectives ("The response should avoid content that is offensive, ...")
    DSP        its four user types, stated ("I am an academic: ...") and implied by a background (three each)
"""

from .. import catalog
from . import read_shared_json
from .converters import DSP_PREFERENCES
from .metaalign import PERSONAS
from .synth import janus_preferences


def all_free_text(data_dir=None) -> list[str]:
    amulet = [d.text for d in catalog.DIMENSIONS if d.source == "Amulet"]
    objectives = read_shared_json("preference_dimension_texts.json", data_dir)["metaaligner_objectives"]["objectives"]
    dsp = [*DSP_PREFERENCES.values(), *(text for texts in PERSONAS.values() for text in texts)]
    return list(dict.fromkeys([*janus_preferences(data_dir), *amulet, *objectives.values(), *dsp]))
