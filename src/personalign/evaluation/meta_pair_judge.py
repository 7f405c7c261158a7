"""The judge of sampled MetaAlign answers (`train-policy --dpo-pairs sampled`, training/sampled_pairs.py): each
preference id is scored by the measure that knows it.

    priority:RULE   the rule's own offline check (data/priority.py): 1 when the answer obeys System Info, else 0
    psoups:DIM      the offline judge's measure of the P-SOUPS dimension (reading grade, word counts, sentiment)
    anything else   the relevance judge: how close the answer is, in meaning, to the User Info text (a proxy)

and how close sampled answers stay to the question (`meta_pair_closeness`): the MiniLM similarity of the answer to
the prompt as a share of that of the data's chosen answer for the context, an answer to that very question.
"""

import functools

from ..data.metaalign import MetaPair
from ..data.priority import obeys
from ..prompts import as_messages
from .judges.offline import OfflineJudge


def meta_pair_judge():
    """A callable (pair, answers) -> one score per answer, higher is better."""
    offline = OfflineJudge()

    def judge(pair: MetaPair, answers: list[str]) -> list[float]:
        kind, _, name = pair.preference.partition(":")
        if pair.rule:
            return [float(obeys(pair.rule, pair.params, answer)) for answer in answers]
        if kind == "psoups" and name in offline.dimensions():
            return offline.score(name, [""] * len(answers), answers)
        return _relevance().score(pair.user_info, [""] * len(answers), answers)

    return judge


def meta_pair_closeness(relevance=None):
    """A callable (pair, answers) -> per answer, its closeness to the pair's question as a share of the data's
    chosen answer's (see the module docstring); `relevance` a RelevanceJudge (default: one over the shipped MiniLM,
    loaded when first needed)."""

    def closeness(pair: MetaPair, answers: list[str]) -> list[float]:
        question = as_messages(pair.prompt)[-1]["content"]  # what the answer answers: the last user turn
        *sims, reference = (relevance or _relevance()).score_many([question] * (len(answers) + 1),
                                                                 [*answers, pair.chosen])
        return [sim / reference if reference > 0 else float(sim >= reference) for sim in sims]

    return closeness


@functools.cache
def _relevance():
    """The relevance judge, its embedder loaded only when a judgment first needs it."""
    from .judges.relevance import RelevanceJudge
    return RelevanceJudge()
