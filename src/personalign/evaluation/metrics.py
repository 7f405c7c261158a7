"""Judge-free metrics: diversity (as ARGS reports it) and fluency (perplexity under the base model); the loop and
template-echo checks are in answer_checks.py."""

import math

import torch


def diversity(text: str) -> float:
    """prod over n = 2..4 of (unique n-grams / n-grams) of the whitespace tokens; 1 = no repeated phrase.

    Texts too short to have n-grams of some order count as fully diverse at that order.
    """
    words = text.split()
    value = 1.0
    for n in (2, 3, 4):
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            value *= len(set(grams)) / len(grams)
    return value


@torch.inference_mode()
def perplexities(model, prompt_ids: list[list[int]], answer_ids: list[list[int]], pad_id: int,
                 batch_size: int = 8) -> list[float]:
    """exp(mean negative log-likelihood of the answer tokens given the prompt) under `model`, per answer.

    Rows are right-padded; an empty answer gets nan.
    """
    device = model.get_output_embeddings().weight.device
    out = []
    for start in range(0, len(prompt_ids), batch_size):
        prompts, answers = prompt_ids[start:start + batch_size], answer_ids[start:start + batch_size]
        rows = [p + a for p, a in zip(prompts, answers)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, device=device)
            mask[i, :len(r)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = logits[:, :-1].log_softmax(-1).gather(2, ids[:, 1:, None]).squeeze(2)
        for i, (p, a) in enumerate(zip(prompts, answers)):
            if not a:
                out.append(math.nan)
                continue
            nll = -logp[i, len(p) - 1:len(p) - 1 + len(a)].mean()
            out.append(float(nll.exp()))
    return out
