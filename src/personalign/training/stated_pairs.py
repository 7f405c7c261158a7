"""DPO pairs that carry a stated preference's answers over to the backgrounds that imply it, for `train-policy
--dpo-pairs stated`.

A policy that follows "answer concisely" may still ignore "I'm in a hurry" (README, MetaAlign: implicit preferences).
For a seeded sample of the training pairs' implicit contexts (a background as User Info), the policy writes its greedy
answer twice: under the background, and under the stated preference that background implies (the User Info of the
data's explicit pairs with the same preference id). The stated answer is chosen over the background's answer where the
judge scores it higher under that preference, so DPO moves the policy's mode under the background toward its mode
under the stated text. As for sampled pairs (training/sampled_pairs.py), a stated answer that loops or copies a
template back is never chosen, nor one under `min_share` of the data answer's closeness to the question, nor, with
`chosen_as_close`, one further from the question than the background's answer.

The pairs are written once to RUN/sampled_pairs.jsonl and read back by a resumed run.
"""

from dataclasses import replace
from pathlib import Path

from ..answer_checks import degenerate
from ..data.metaalign import MetaPair
from .sampled_pairs import Closeness, PairJudge, greedy_answers, pairs_in_batches, sample_contexts, written_once


def stated_pairs(out: Path, policy, tokenizer, pairs: list[MetaPair], judge: PairJudge, *, contexts: int,
                 max_new_tokens: int, batch_size: int, seed: int, closeness: Closeness | None = None,
                 min_share: float = 0.0, chosen_as_close: bool = False, progress: bool = True) -> list[MetaPair]:
    """This run's pairs: read back from `out`, or written by the policy, judged and saved (module docstring)."""
    return written_once(out, lambda: _make(policy, tokenizer, pairs, judge, contexts, max_new_tokens, batch_size,
                                           seed, closeness, min_share, chosen_as_close, progress),
                        "no implicit context gave a pair: the policy's stated answers never beat its answers to the "
                        "backgrounds (or the data has no implicit pairs whose preference is also stated)")


def stated_user_infos(pairs: list[MetaPair]) -> dict[str, str]:
    """Preference id -> the User Info its explicit pairs state it with (the first, where there are several)."""
    stated = {}
    for pair in pairs:
        if pair.explicit and not pair.rule:
            stated.setdefault(pair.preference, pair.user_info)
    return stated


def _make(policy, tokenizer, pairs, judge, contexts, max_new_tokens, batch_size, seed, closeness, min_share,
          chosen_as_close, progress) -> list[MetaPair]:
    stated = stated_user_infos(pairs)
    chosen = sample_contexts(pairs, contexts, seed, keep=lambda pair: not pair.explicit and pair.preference in stated)

    def pair_batch(batch):
        implied = greedy_answers(policy, tokenizer, batch, max_new_tokens)
        told = greedy_answers(policy, tokenizer, [replace(c, user_info=stated[c.preference]) for c in batch],
                              max_new_tokens)
        return [_stated_over_implied(context, stated_answer, answer, judge, closeness, min_share, chosen_as_close)
                for context, answer, stated_answer in zip(batch, implied, told)]

    return pairs_in_batches(chosen, batch_size, pair_batch, "stated vs implied answers", progress)


def _stated_over_implied(context: MetaPair, stated: str, implied: str, judge: PairJudge,
                         closeness: Closeness | None = None, min_share: float = 0.0,
                         chosen_as_close: bool = False) -> MetaPair | None:
    """The stated answer over the implied one under the background's context, where it is the better answer and may
    be chosen; else None."""
    if not stated or not implied or stated == implied or degenerate(stated):
        return None
    scores = judge(context, [stated, implied])
    if scores is None or scores[0] <= scores[1]:
        return None
    shares = closeness(context, [stated, implied]) if closeness else [1.0, 1.0]
    if shares[0] < max(min_share, shares[1] if chosen_as_close else 0.0):
        return None
    return replace(context, chosen=stated, rejected=implied)
