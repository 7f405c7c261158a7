"""Choosing the next token from candidate scores: greedy, or temperature + top-p sampling with a seeded generator.

Each request has its own torch.Generator, so a sampled answer depends only on its own seed, not on what else is
in the batch.
"""

import torch


def choose(cand: torch.Tensor, scores: torch.Tensor, temperature: list[float], top_p: list[float],
           generators: list[torch.Generator | None]) -> list[int]:
    """The chosen token id for each row of candidate ids [B, K] and scores [B, K] (-inf = not a candidate)."""
    picks = scores.argmax(-1)  # greedy rows keep this; argmax takes the first of equal scores, as torch.topk order
    if any(temp > 0 for temp in temperature):
        # one copy to the host per step: on a GPU, a sync per sampled row costs more than the sampling
        host, picks = scores.float().cpu(), picks.cpu()
        for row, temp in enumerate(temperature):
            if temp > 0:
                picks[row] = _sample(host[row], temp, top_p[row], generators[row])
    return cand.gather(1, picks.to(cand.device)[:, None]).squeeze(1).tolist()


def _sample(scores: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    probs = (scores.float() / temperature).softmax(-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # drop a candidate once the ones before it already hold top_p of the mass (the best one always stays)
        drop = sorted_probs.cumsum(0) - sorted_probs > top_p
        probs = probs.scatter(0, order, sorted_probs.masked_fill(drop, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))
