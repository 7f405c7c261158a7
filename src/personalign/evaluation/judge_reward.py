"""A pointwise judge used as a sequence-level reward: ARGS's R(x, y) and best-of-n's picker.

For a preference with several catalog dimensions the reward is the weighted sum of the judge's scores on each.
Note that a method steered by the same judge that later grades it is graded on its own objective; the README's
table says which judge steered which method.
"""

from collections import defaultdict

from ..decoding.sequence_rm import CachedSequenceReward
from ..errors import PersonalignError
from ..preferences import Preference
from .judges.base import Judge


class JudgeReward:
    def __init__(self, judge: Judge):
        if not judge.pointwise:
            raise PersonalignError(f"judge {judge.name} only compares pairs; a reward needs a pointwise judge")
        self.judge = judge

    def check(self, preference: Preference) -> None:
        """Raise unless the judge can score every dimension of `preference`."""
        for name, _ in preference.dimensions:
            if name is None:
                raise PersonalignError(f"judge {self.judge.name} cannot score the free-text preference "
                                       f"{preference.label!r}; use catalog dimensions (concise, expert, ...)")
            self.judge.check(name)

    def __call__(self, preferences: list[Preference], prompts: list[str], texts: list[str]) -> list[float]:
        totals = [0.0] * len(texts)
        by_dimension = defaultdict(list)  # one judge call per dimension for the whole batch
        for i, pref in enumerate(preferences):
            for name, weight in pref.dimensions:
                by_dimension[name].append((i, weight))
        for name, items in by_dimension.items():
            scores = self.judge.score(name, [prompts[i] for i, _ in items], [texts[i] for i, _ in items])
            for (i, weight), score in zip(items, scores):
                totals[i] += weight * score
        return totals


def args_reward(judge: Judge, reward: JudgeReward, vocab_size: int):
    """ARGS's reward: a decoder reward model over the base's vocabulary follows each request with a KV cache
    (decoding/sequence_rm.py); any other pointwise judge scores the decoded text of every candidate."""
    model = getattr(judge, "model", None)
    if model is not None and hasattr(model, "get_decoder") and getattr(model, "score", None) is not None \
            and model.config.vocab_size == vocab_size and model.config.num_labels == 1:
        return CachedSequenceReward(model)
    return reward
