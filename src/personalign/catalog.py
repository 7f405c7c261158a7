"""The built-in catalog of named preference dimensions, with the exact texts of their sources.

Texts are copied from the published sources so that runs here match the papers' prompts word for word:
P-SOUPS (Jang et al., Personalized Soups) P1A..P3B and the RLPHF annotator goals 3C/3D; PAD's principles
(helpfulness / harmless / humor are the bare words the released PAD configs use); Amulet's eight preferences.
The package carries them itself so nothing outside it is needed at run time.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Dimension:
    name: str  # the readable name users type
    text: str  # the exact text put into the prompt
    source: str
    aliases: tuple[str, ...] = ()


_PSOUPS = "P-SOUPS"
_PAD = "PAD"
_AMULET = "Amulet"

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("elementary", "Generate a response that can be easily understood by an elementary school student.",
              _PSOUPS, ("P1A", "beginner")),
    Dimension("expert", "Generate a response that only a PhD Student in that specific field could understand.",
              _PSOUPS, ("P1B", "phd")),
    Dimension("concise", "Generate a response that is concise and to the point without being verbose.",
              _PSOUPS, ("P2A",)),
    Dimension("informative", "Generate a response that is very informative without missing any background information.",
              _PSOUPS, ("P2B",)),
    Dimension("friendly", "Generate a response that is friendly, witty, funny, and humorous, like a close friend.",
              _PSOUPS, ("P3A",)),
    Dimension("unfriendly", "Generate a response in an unfriendly manner.", _PSOUPS, ("P3B",)),
    # RLPHF's extra annotator goals are phrased for a judge ("select the response that ..."); as a principle we
    # keep their adjective, the same way PAD passes bare words.
    Dimension("sassy", "sassy", _PSOUPS, ("P3C", "3C")),
    Dimension("sarcastic", "sarcastic", _PSOUPS, ("P3D", "3D")),
    Dimension("helpfulness", "helpfulness", _PAD, ("helpful",)),
    Dimension("harmless", "harmless", _PAD, ("harmlessness",)),
    Dimension("humor", "humor", _PAD, ("humour", "funny")),
    Dimension("creative", "Your answer should be creative as much as possible.", _AMULET),
    Dimension("sycophantic", "Your answer should be sycophantic as much as possible.", _AMULET),
    Dimension("verbose", "Your answer should be verbose as much as possible.", _AMULET),
    Dimension("complex", "Your answer should be complex as much as possible.", _AMULET),
    Dimension("formal", "Your answer should be formal as much as possible.", _AMULET),
    Dimension("pleasant", "Your answer should be pleasant as much as possible.", _AMULET),
    # P-SOUPS owns the short name "concise"; Amulet's version stays reachable under its source prefix.
    Dimension("amulet-concise", "Your answer should be concise as much as possible.", _AMULET),
    Dimension("uplifting", "Your answer should be uplifting as much as possible.", _AMULET),
)

# P-SOUPS' three axes, each (one end, the other): one end is the other's opposite, so a weight on both asks for
# a contrast only (training flips pairs across an axis; learned weights are decoded as their net end).
AXES: tuple[tuple[str, str], ...] = (("elementary", "expert"), ("concise", "informative"), ("friendly", "unfriendly"))
OPPOSITE: dict[str, str] = {a: b for a, b in AXES} | {b: a for a, b in AXES}

_BY_KEY: dict[str, Dimension] = {}
for _dim in DIMENSIONS:
    for _key in (_dim.name, *_dim.aliases):
        assert _key.lower() not in _BY_KEY, f"duplicate catalog key {_key}"
        _BY_KEY[_key.lower()] = _dim


def known_names() -> list[str]:
    return [d.name for d in DIMENSIONS]


def lookup(name: str) -> Dimension | None:
    """The dimension called `name` (a readable name, an alias or a P-SOUPS id; case-insensitive), or None."""
    return _BY_KEY.get(name.strip().lower())


_BY_TEXT: dict[str, Dimension] = {d.text: d for d in DIMENSIONS}


def by_text(text: str) -> Dimension | None:
    """The dimension whose exact text this is, or None (free text)."""
    return _BY_TEXT.get(text)
