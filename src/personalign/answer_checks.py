"""Checks of an answer's text that every layer needs: does it copy PAD's prompt template back, does it loop, does it
run words together.

Small models fail in these ways, and proxy judges reward them (the preference words an echo repeats, the short
words of a loop, the many distinct words of a comma-joined run), so synthesis keeps such answers out of `chosen`,
and the evaluation report counts them and reports a win rate in which such an answer loses to one that does not
fail.
"""

import re

# An answer that copies PAD's prompt template back ("[Guidelines] Your task is to ...") has failed the instruction,
# whatever a judge makes of the preference words it repeats; small models do this under the template, often with a
# tag bent ("[Instructions]", "[Guided Instructions]", "[guideline]": a quarter of the echoes in a synthesized tone
# pool, which the exact tags missed and label flipping then made chosen answers).
TEMPLATE_ECHO = re.compile(r"(?i:\[(?:guidelines?|guided instructions?|principles?|instructions?)\]"
                           r"|generate a response that)|Your task is to")

# Four or more words joined by commas without spaces ("I,m,a,vaccine"): a small model's babble, which the loop check
# misses (it splits on spaces) and a distinct-words judge likes. Digits are left out: "1,000,000" is a number.
RUN_TOGETHER = re.compile(r"[A-Za-z']+(?:,[A-Za-z']+){3,}")

LOOP_MIN_WORDS = 16
LOOP_DISTINCT_FRACTION = 0.5


def echoes_template(text: str) -> bool:
    return TEMPLATE_ECHO.search(text) is not None


def loops(text: str) -> bool:
    """Whether an answer of 16+ words has fewer than half distinct (lower-cased) words: a model repeating a phrase."""
    words = text.lower().split()
    return len(words) >= LOOP_MIN_WORDS and len(set(words)) < LOOP_DISTINCT_FRACTION * len(words)


def runs_together(text: str) -> bool:
    return RUN_TOGETHER.search(text) is not None


def degenerate(text: str) -> bool:
    """Whether an answer failed in any of these ways: it copies PAD's prompt template back, loops or runs words
    together."""
    return echoes_template(text) or loops(text) or runs_together(text)
