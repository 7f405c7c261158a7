"""ARGS's sequence-level reward from a decoder reward model that keeps a KV cache per request.

A transformers sequence-classification model on a causal decoder (e.g. LlamaForSequenceClassification) scores a
sequence from its last hidden state. ARGS needs that score for the answer so far plus each of the k candidates at
every step; here the reward model follows each request with its own cached row (it reads the conversation as the
base renders it: the user's prompt, then the answer as it grows), and the k candidates are scored as k one-token
continuations of that cache (RowRunner.peek), so the prefix is never re-encoded. Per token: one forward of k
candidate rows plus one of the chosen token. The reward model must share the base model's vocabulary, since it
reads the base's token ids.
"""

import torch

from ..errors import PersonalignError


class CachedSequenceReward:
    def __init__(self, model):
        """`model`: a sequence-classification model over a causal decoder, with one output (its reward)."""
        if not hasattr(model, "get_decoder") or getattr(model, "score", None) is None:
            raise PersonalignError(f"{type(model).__name__} is not a decoder sequence-classification model; "
                                   "ARGS with a KV cache needs e.g. LlamaForSequenceClassification")
        if model.config.num_labels != 1:
            raise PersonalignError(f"the reward model has {model.config.num_labels} outputs; ARGS needs one")
        self.model = model.eval()

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    def rewards(self, hidden: torch.Tensor) -> torch.Tensor:
        """Rewards [...] from last hidden states [..., d]."""
        return self.model.score(hidden).squeeze(-1).float()
