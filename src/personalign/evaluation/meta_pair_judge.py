"""The judge of sampled MetaAlign answers (`train-policy --dpo-pairs sampled`, training/sampled_pairs.py): each
preference id is scored by the measure that knows it.

    priority:RULE   the rule's own offline check (data/priority.py): 1 when the answer obeys System Info, else 0
    psoups:DIM      the offline judge's measure of the P-SOUPS dimension (reading grade, word counts, sentiment)
    anything else   the relevance judge: how close the answer is, in meaning, to the User Info text (a proxy)
"""

from ..data.metaalign import MetaPair
from ..data.priority import obeys
from .judges.offline import OfflineJudge


def meta_pair_judge():
    """A callable (pair, answers) -> one score per answer, higher is better."""
    offline, relevance = OfflineJudge(), []  # the relevance judge's embedder loads only when first needed

    def judge(pair: MetaPair, answers: list[str]) -> list[float]:
        kind, _, name = pair.preference.partition(":")
        if pair.rule:
            return [float(obeys(pair.rule, pair.params, answer)) for answer in answers]
        if kind == "psoups" and name in offline.dimensions():
            return offline.score(name, [""] * len(answers), answers)
        if not relevance:
            from .judges.relevance import RelevanceJudge
            relevance.append(RelevanceJudge())
        return relevance[0].score(pair.user_info, [""] * len(answers), answers)

    return judge
