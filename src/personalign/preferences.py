"""Preference values: free text, or a weighted mix of catalog dimensions. Parsed and validated once, at the edge.

A preference is a tuple of (text, weight) components with weights summing to one. A single free text (including a
text composition such as "harmless and helpfulness", the released PAD's way of combining) is one component. A
weighted mix (`concise=0.7,friendly=0.3`) has one component per dimension; PAD then mixes their rewards,
r = sum_i w_i * r_i, at the cost of one PersRM row per component.
"""

import math
import re
from dataclasses import dataclass
from typing import Mapping

from . import catalog
from .errors import PersonalignError
from .validation import check_preference_words, did_you_mean

_NAME = re.compile(r"[\w-]+")  # what a catalog name (or a typo of one) looks like


@dataclass(frozen=True)
class Preference:
    components: tuple[tuple[str, float], ...] = ()
    label: str = ""  # how the user named it, for tables and logs

    @classmethod
    def none(cls) -> "Preference":
        return cls((), "none")

    @classmethod
    def from_text(cls, text: str) -> "Preference":
        text = (text or "").strip()
        if not text:
            raise PersonalignError("the preference text is empty: write what the user wants, e.g. 'keep it short'")
        return cls(((text, 1.0),), text)

    @classmethod
    def from_dims(cls, dims: str | Mapping[str, float]) -> "Preference":
        """`"concise=0.7,friendly=0.3"`, `"concise,friendly"` (equal weights) or a mapping name -> weight."""
        pairs = parse_dims(dims) if isinstance(dims, str) else list(dims.items())
        if not pairs:
            raise PersonalignError("no dimensions given: use e.g. --dims concise=0.7,friendly=0.3")
        seen, components = set(), []
        for name, weight in pairs:
            dim = catalog.lookup(name)
            if dim is None:
                raise PersonalignError(f"unknown preference dimension {name!r}" + (
                    did_you_mean(name) or f"; known: {', '.join(catalog.known_names())} (or P-SOUPS ids P1A..P3B)"))
            if dim.name in seen:
                raise PersonalignError(f"preference dimension {dim.name!r} is given twice")
            if not (math.isfinite(weight) and weight > 0):
                raise PersonalignError(f"weight of {name!r} must be a positive number, got {weight}")
            seen.add(dim.name)
            components.append((dim.text, float(weight)))
        total = sum(w for _, w in components)
        label = ",".join(f"{n}={w:g}" for n, w in pairs) if len(pairs) > 1 else catalog.lookup(pairs[0][0]).name
        return cls(tuple((t, w / total) for t, w in components), label)

    @classmethod
    def parse(cls, value: "str | Preference | None", strict: bool = True) -> "Preference":
        """Catalog names (`concise`, `concise=0.7,friendly=0.3`), else free text; None is none.

        `strict` (a user's input): a list of names with a typo in it, or one word that is neither a catalog name
        nor an English word, is refused with a suggestion instead of becoming a free-text principle by accident.
        Stored preferences (pair files, run records) are parsed with strict=False: they are whatever their data
        says."""
        if value is None:
            return cls.none()
        if isinstance(value, Preference):
            return value
        if not isinstance(value, str):
            raise PersonalignError(f"a preference is text or a mapping of dimensions, got {type(value).__name__}")
        items = [item.strip() for item in value.split(",") if item.strip()]
        names = [item.partition("=")[0].strip() for item in items]
        if names and all(catalog.lookup(n) is not None for n in names):
            return cls.from_dims(value)
        if strict and names and all(_NAME.fullmatch(n) for n in names):
            if any("=" in item for item in items):
                return cls.from_dims(value)  # a weighted mix with an unknown name: from_dims names it
            check_preference_words(names)
        return cls.from_text(value)

    @property
    def is_empty(self) -> bool:
        return not self.components

    @property
    def text(self) -> str | None:
        """The text composition the base model reads: the components joined by 'and', as the released PAD does."""
        return " and ".join(t for t, _ in self.components) if self.components else None

    @property
    def texts(self) -> list[str]:
        return [t for t, _ in self.components]

    @property
    def weights(self) -> list[float]:
        return [w for _, w in self.components]

    @property
    def dimensions(self) -> list[tuple[str | None, float]]:
        """(catalog name, weight) per component; None for free text no catalog dimension has."""
        return [(d.name if (d := catalog.by_text(t)) else None, w) for t, w in self.components]

    @property
    def judged_dimensions(self) -> list[tuple[str, float]]:
        """(what a judge judges, weight) per component: the catalog name, or the free text itself (for a judge of
        free text, such as relevance)."""
        return [(name or text, w) for (name, w), text in zip(self.dimensions, self.texts)]


def parse_dims(spec: str) -> list[tuple[str, float]]:
    """`"concise=0.7,friendly"` -> [("concise", 0.7), ("friendly", 1.0)]; names are not checked here."""
    pairs = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, weight = item.partition("=")
        try:
            pairs.append((name.strip(), float(weight) if sep else 1.0))
        except ValueError:
            raise PersonalignError(f"bad weight in {item!r}: write name=number, e.g. concise=0.7") from None
    return pairs
