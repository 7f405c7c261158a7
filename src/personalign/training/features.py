"""Pairs as token ids, the way the decoding engine shows them to the PersRM, and batches of them.

The policy (the PersRM) reads the prompt with the preference in PAD's principle template, exactly the ids the engine
builds (`prompts.render_ids`); the reference reads the same ids, or the prompt without the preference. A response
is scored on its own tokens, and on the tokenizer's end of turn after them only where the pair says the answer
ended there (`chosen_ends`, `rejected_ends`) and it fits whole: synthesized rollouts are often cut at a length
limit, and an end token there would teach the model to stop mid-sentence, while one after an answer that did stop
teaches the reward when stopping is what the preference wants (a concise answer that ends against one that runs on).
"""

from dataclasses import dataclass

import torch

from ..preferences import Preference
from ..prompts import render_ids

MIN_RESPONSE_TOKENS = 8  # a pair whose prompt leaves less room than this for a response is dropped


@dataclass(frozen=True)
class PairIds:
    preference: str
    policy_prompt: tuple[int, ...]
    reference_prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]


def encode_pairs(pairs, tokenizer, max_length: int, reference_reads_preference: bool) -> tuple[list[PairIds], int]:
    """(encoded pairs, number dropped because the prompt leaves too little room). Responses longer than the room
    left by the prompt are cut at `max_length` tokens in all."""
    encoded, dropped = [], 0
    prompt_cache: dict[tuple, tuple[int, ...]] = {}

    def prompt_ids(prompt, principle):
        key = (repr(prompt), principle)
        if key not in prompt_cache:
            prompt_cache[key] = tuple(render_ids(tokenizer, prompt, principle))
        return prompt_cache[key]

    for pair in pairs:
        principle = Preference.parse(pair.preference, strict=False).text
        policy = prompt_ids(pair.prompt, principle)
        reference = policy if reference_reads_preference else prompt_ids(pair.prompt, None)
        room = max_length - max(len(policy), len(reference))
        chosen = _response_ids(tokenizer, pair.chosen, pair.chosen_ends, room)
        rejected = _response_ids(tokenizer, pair.rejected, pair.rejected_ends, room)
        if room < MIN_RESPONSE_TOKENS or not chosen or not rejected or chosen == rejected:
            dropped += 1
            continue
        encoded.append(PairIds(pair.preference, policy, reference, chosen, rejected))
    return encoded, dropped


def _response_ids(tokenizer, text: str, ends: bool, room: int) -> tuple[int, ...]:
    """The answer's ids cut to `room`, with the end of turn after a whole answer that ended and still fits."""
    ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    if ends and tokenizer.eos_token_id is not None and len(ids) < room:
        return ids + (tokenizer.eos_token_id,)
    return ids[:max(room, 0)]


@dataclass
class Rows:
    """Sequences right-padded into one batch, and where their response tokens are: the log-probability of token
    `targets[j]` is read from the logits at (`rows[j]`, `positions[j]`), the position before it."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor

    def to(self, device) -> "Rows":
        return Rows(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.rows, self.positions,
                                              self.targets)))


def collate(prompts: list[tuple[int, ...]], responses: list[tuple[int, ...]], pad_id: int) -> Rows:
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    rows, positions, targets = [], [], []
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        sequence = prompt + response
        ids[i, :len(sequence)] = torch.tensor(sequence)
        mask[i, :len(sequence)] = 1
        rows += [i] * len(response)
        positions += range(len(prompt) - 1, len(sequence) - 1)
        targets += response
    return Rows(ids, mask, torch.tensor(rows), torch.tensor(positions), torch.tensor(targets))


def pair_rows(batch: list[PairIds], pad_id: int) -> tuple[Rows, Rows]:
    """(policy rows, reference rows): the chosen responses of the batch first, then the rejected ones."""
    responses = [p.chosen for p in batch] + [p.rejected for p in batch]
    policy = collate([p.policy_prompt for p in batch] * 2, responses, pad_id)
    reference = collate([p.reference_prompt for p in batch] * 2, responses, pad_id)
    return policy, reference
