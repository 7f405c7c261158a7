"""The preference-conditioned DPO objective on PAD's token-level reward (spec section 2).

    r(x, y | p) = beta * sum_t [log pi_theta(y_t | s_t, p) - log pi_ref(y_t | s_t)]
    loss        = -log sigmoid(r(x, y_chosen | p) - r(x, y_rejected | p))

pi_theta is the PersRM reading the preference: its backbone (with the LoRA adapter) then the head W, then the
backbone's unembedding U. pi_ref is the frozen backbone alone: adapter off, no head. Only the positions that predict
response tokens are unembedded, which saves the 49k-wide projection of every prompt position.
"""

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .features import Rows


class SequenceScorer(nn.Module):
    """Summed response log-probabilities under the PersRM (policy) or its frozen backbone (reference).

    A module of its own so that accelerate can wrap it (DistributedDataParallel must see the forward it syncs).
    `train_backbone` False runs the backbone without gradients: the head-only stage.
    """

    def __init__(self, persrm, train_backbone: bool = True):
        super().__init__()
        self.persrm = persrm
        self.train_backbone = train_backbone

    def forward(self, rows: Rows, reference: bool = False) -> torch.Tensor:
        persrm = self.persrm
        if reference:
            adapter_off = persrm.backbone.disable_adapter() if persrm.has_adapter else nullcontext()
            with torch.no_grad(), adapter_off:
                hidden = self._hidden(rows)
                return _summed_log_probs(persrm.causal_lm.get_output_embeddings()(hidden), rows)
        with torch.set_grad_enabled(self.train_backbone and torch.is_grad_enabled()):
            hidden = self._hidden(rows)
        return _summed_log_probs(persrm.head_logits(hidden), rows)

    def _hidden(self, rows: Rows) -> torch.Tensor:
        decoder = self.persrm.causal_lm.get_decoder()
        states = decoder(input_ids=rows.input_ids, attention_mask=rows.attention_mask).last_hidden_state
        return states[rows.rows, rows.positions]


def _summed_log_probs(logits: torch.Tensor, rows: Rows) -> torch.Tensor:
    token = F.log_softmax(logits.float(), dim=-1).gather(-1, rows.targets[:, None]).squeeze(-1)
    return torch.zeros(int(rows.input_ids.shape[0]), device=token.device).index_add_(0, rows.rows, token)


def dpo_terms(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """From per-row sums laid out [chosen..., rejected...]: per-pair loss, rewards and whether chosen wins."""
    rewards = beta * (policy - reference)
    chosen, rejected = rewards.chunk(2)
    margin = chosen - rejected
    return {"loss": -F.logsigmoid(margin), "margin": margin, "chosen": chosen, "rejected": rejected,
            # a tie (an untrained PersRM under the released reference gives exactly 0 to both) counts half
            "correct": (margin > 0).float() + 0.5 * (margin == 0).float()}
