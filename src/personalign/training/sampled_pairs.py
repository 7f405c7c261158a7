"""DPO pairs sampled from the SFT policy and judged (MetaAlign's second recipe: SFT, then DPO on pairs sampled from
the SFT model, the paper's "sample from 7b/13b" files), for `train-policy --dpo-pairs sampled`.

For a seeded sample of the training pairs' distinct (meta-prompt, prompt) contexts, the SFT policy writes `samples`
answers each by temperature sampling; a judge scores them under that meta-prompt's preference, and the best and the
worst answer make a pair when the judge tells them apart. With `rejected` "greedy" the rejected answer is instead the
policy's own greedy answer to the context (its mode, which greedy evaluation reads), paired with the best sample where
the judge scores that higher: sampled best against sampled worst can teach a preference the samples already show while
leaving the mode where it was (docs/metaalign-log.md, v5). With `chosen_as_close` the chosen answer must also stay at
least as close to the question as the rejected one, so that a pair differs in the preference and not in staying on the
question (sampled best answers drift from it a little more often than not). An answer that loops or copies a prompt
template back may be rejected, never chosen (data/synth.py: proxy judges like both), nor may one that leaves the
question (VADER likes "Awesome, happy to help!" whatever was asked): `closeness` says how close each answer stays to it,
and one under `min_share` may not be chosen. The judge and closeness are callables the command wires from the
evaluation's judges (this layer does not import evaluation): the judge, (pair, answers) -> one score per answer, higher
is better, or None where it knows no measure for that preference (the context is then skipped); `closeness`, (pair,
answers) -> per answer its closeness to the question as a share of the data's chosen answer's.

The pairs are written once, atomically, to RUN/sampled_pairs.jsonl; a resumed run reads them back rather than
sampling again, so DPO resumes on the very pairs it started with.
"""

import random
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..answer_checks import degenerate
from ..data.metaalign import MetaPair, as_record, read_meta_pairs
from ..data.pairs import prompt_key
from ..errors import PersonalignError
from ..padding import left_padded
from ..meta_prompt import render_meta_ids
from ..records import write_records_atomic

SAMPLED_FILE = "sampled_pairs.jsonl"
PairJudge = Callable[[MetaPair, list[str]], "list[float] | None"]
Closeness = Callable[[MetaPair, list[str]], list[float]]


def sampled_pairs(out: Path, policy, tokenizer, pairs: list[MetaPair], judge: PairJudge, *, contexts: int,
                  samples: int, max_new_tokens: int, temperature: float, batch_size: int, seed: int,
                  closeness: Closeness | None = None, min_share: float = 0.0, chosen_as_close: bool = False,
                  rejected: str = "worst", progress: bool = True) -> list[MetaPair]:
    """The sampled pairs of this run: read back from `out`/sampled_pairs.jsonl, or sampled, judged and written."""
    return written_once(out, lambda: _make(policy, tokenizer, pairs, judge, contexts, samples, max_new_tokens,
                                           temperature, batch_size, seed, closeness, min_share, chosen_as_close,
                                           rejected, progress),
                        "sampling gave no DPO pairs: the judge told no two answers apart (more --dpo-samples or a "
                        "higher --dpo-temperature may help)")


def written_once(out: Path, make: Callable[[], list[MetaPair]], none_made: str) -> list[MetaPair]:
    """The pairs in `out`/sampled_pairs.jsonl, or those `make` gives, written there atomically (`none_made`: the
    error where it gives none)."""
    path = out / SAMPLED_FILE
    if path.is_file():
        return read_meta_pairs(path)
    made = make()
    if not made:
        raise PersonalignError(none_made)
    write_records_atomic(path, [as_record(p) for p in made])
    return made


def _make(policy, tokenizer, pairs, judge, contexts, samples, max_new_tokens, temperature, batch_size, seed,
          closeness, min_share, chosen_as_close, rejected, progress) -> list[MetaPair]:
    chosen = sample_contexts(pairs, contexts, seed)
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def pair_batch(batch):
        answers = _sample(policy, tokenizer, batch, samples, max_new_tokens, temperature, generator)
        modes = greedy_answers(policy, tokenizer, batch, max_new_tokens) if rejected == "greedy" \
            else [None] * len(batch)
        return [_best_and_worst(context, texts, judge, closeness, min_share, chosen_as_close, mode)
                for context, texts, mode in zip(batch, answers, modes)]

    return pairs_in_batches(chosen, batch_size, pair_batch, "sampling DPO pairs", progress)


def sample_contexts(pairs: list[MetaPair], contexts: int, seed: int,
                    keep: Callable[[MetaPair], bool] = lambda pair: True) -> list[MetaPair]:
    """A seeded sample of at most `contexts` distinct (meta-prompt, prompt) contexts among the pairs `keep` accepts,
    each the first pair of its context standing for it."""
    firsts = {}
    for pair in pairs:
        if keep(pair):
            firsts.setdefault((pair.system_info, pair.user_info, prompt_key(pair)), pair)
    return random.Random(seed).sample(list(firsts.values()), min(contexts, len(firsts)))


def pairs_in_batches(contexts: list[MetaPair], batch_size: int, pair_batch, desc: str,
                     progress: bool) -> list[MetaPair]:
    """The pairs `pair_batch` makes of each batch of `contexts` (None where a context gives none), with a progress
    bar."""
    made = []
    bar = tqdm(total=len(contexts), desc=desc, unit="prompt", disable=not progress)
    for start in range(0, len(contexts), batch_size):
        batch = contexts[start:start + batch_size]
        made += [pair for pair in pair_batch(batch) if pair is not None]
        bar.update(len(batch))
    bar.close()
    return made


def _sample(policy, tokenizer, batch: list[MetaPair], samples: int, max_new_tokens: int, temperature: float,
            generator: torch.Generator) -> list[list[str]]:
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))  # generate samples from torch's
    texts = _generate(policy, tokenizer, batch, max_new_tokens, do_sample=True, temperature=temperature,
                      top_k=0, top_p=1.0, num_return_sequences=samples)
    return [texts[i * samples:(i + 1) * samples] for i in range(len(batch))]


def greedy_answers(policy, tokenizer, batch: list[MetaPair], max_new_tokens: int) -> list[str]:
    """The policy's greedy answer to each context's meta-prompt and prompt."""
    return _generate(policy, tokenizer, batch, max_new_tokens, do_sample=False)


@torch.inference_mode()
def _generate(policy, tokenizer, batch: list[MetaPair], max_new_tokens: int, **how) -> list[str]:
    rows = [render_meta_ids(tokenizer, pair.prompt, pair.meta_prompt) for pair in batch]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = left_padded(rows, pad, policy.device)
    out = policy.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, pad_token_id=pad, **how)
    return [t.strip() for t in tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)]


def _best_and_worst(context: MetaPair, answers: list[str], judge: PairJudge,
                    closeness: Closeness | None = None, min_share: float = 0.0, chosen_as_close: bool = False,
                    mode: str | None = None) -> MetaPair | None:
    """The best eligible sample against the worst answer, or against `mode` (the greedy answer) where given; an
    empty greedy answer gives no pair (judges have nothing to score in it)."""
    if mode == "":
        return None
    usable = [a for a in answers if a] + ([mode] if mode else [])
    scores = judge(context, usable) if len(usable) > 1 else None
    if scores is None:
        return None
    shares = closeness(context, usable) if closeness else [1.0] * len(usable)
    sampled = len(usable) - (1 if mode else 0)
    worst = sampled if mode else min(range(len(usable)), key=scores.__getitem__)
    floor = max(min_share, shares[worst]) if chosen_as_close else min_share
    eligible = [i for i in range(sampled) if shares[i] >= floor and not degenerate(usable[i])]
    if not eligible:
        return None
    best = max(eligible, key=scores.__getitem__)
    if scores[best] <= scores[worst] or usable[best] == usable[worst]:
        return None
    return replace(context, chosen=usable[best], rejected=usable[worst])
