"""PAD's per-step scoring rule, exactly as the released code computes it (PAD_SPEC section 3).

    C        = the k tokens with the largest base logits
    l_b, l_t = log-softmax over C of the base and the PersRM logits
    r        = sum_i w_i * l_t_i - l_ref      (l_ref = l_b: released form; l_t without preference: decoupled form)
    score    = z_b + beta * r                 (then argmax over C, or sample softmax(score / T))

Logit fusion (GenARM, DeRa, proxy-tuning; MOD for a weighted mix) works on the whole vocabulary instead:

    fused = log p_base + beta * sum_i w_i (log p_guide_i - log p_base)

Everything works on batches of candidate logits, so every request in a batch may have its own k, beta and weights.
"""

import torch

NEG_INF = float("-inf")


def top_candidates(base_logits: torch.Tensor, top_k: torch.Tensor):
    """The candidate ids [B, K] (K = max top_k), their base logits, and which of the K slots are live per row."""
    k_max = int(top_k.max())
    base_c, cand = base_logits.topk(k_max, dim=-1)
    live = torch.arange(k_max, device=base_logits.device)[None, :] < top_k[:, None]
    return cand, base_c, live


def candidate_log_softmax(logits_c: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the live candidates only (dead slots are -inf)."""
    return logits_c.masked_fill(~live, NEG_INF).log_softmax(-1)


def pad_reward(policy_c: torch.Tensor, weights: torch.Tensor, reference_c: torch.Tensor,
               live: torch.Tensor, neutral: torch.Tensor | None = None) -> torch.Tensor:
    """Token rewards [B, K] from PersRM candidate logits [B, n, K] weighted by [B, n] against a reference [B, K].

    Weights sum to one per row, so a single preference gives exactly the released r = l_theta - l_ref.
    `neutral` [B, K] marks candidates the reward has no say on (the end of turn under end_of_turn="base"): reward 0,
    and left out of both log-softmaxes, so that the mass a PersRM moved off them does not lift the others' rewards.
    """
    if neutral is not None:
        live = live & ~neutral
    policy = candidate_log_softmax(policy_c, live[:, None, :])
    reference = candidate_log_softmax(reference_c, live)
    mixed = (weights[:, :, None] * policy.masked_fill(~live[:, None, :], 0.0)).sum(1)
    return (mixed - reference).masked_fill(~live, 0.0)


def pad_scores(base_c: torch.Tensor, reward: torch.Tensor, beta: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """score = z_b + beta * r on live candidates, -inf elsewhere."""
    return (base_c + beta[:, None] * reward).masked_fill(~live, NEG_INF)


def fusion_logits(base_logits: torch.Tensor, guide: tuple[torch.Tensor, torch.Tensor],
                  beta: torch.Tensor) -> torch.Tensor:
    """Fused log-scores [B, V] from base logits [B, V] and (guide log-probs [B, n, V], weights [B, n])."""
    guide_log_probs, weights = guide
    base = base_logits.log_softmax(-1)
    mixed = (weights[:, :, None] * guide_log_probs).sum(1)  # weights sum to one: sum_i w_i (g_i - b) = mixed - b
    return base + beta[:, None] * (mixed - base)
