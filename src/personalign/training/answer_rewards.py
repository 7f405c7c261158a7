"""The PersRM's reward of whole answers under each preference dimension: features for learning a user's weights.

    r_d(x, y) = sum_t [log pi_theta(y_t | s_t, p_d) - log pi_ref(y_t | s_t, p_d)]

is the summed token reward PAD decodes with (spec section 2), the preference p_d being dimension d's catalog text
in PAD's principle template; as in the released decoding rule, the reference (the backbone alone) reads the same
ids. One number per dimension: a user's choices between answers then fit a weight per dimension
(serving/preference_learner.py).
"""

import threading

import torch

from .. import catalog
from ..errors import PersonalignError
from ..prompts import render_ids
from .dpo import SequenceScorer
from .features import collate
from .trainer import pad_id_of

MAX_LENGTH = 2048  # tokens of prompt and answer scored (an answer past it is cut)


class SummedRewardFeatures:
    """A Featurizer: (prompt, answers) -> per answer, the PersRM's summed reward under each of `dimensions`."""

    def __init__(self, persrm, tokenizer, dimensions: tuple[str, ...], max_length: int = MAX_LENGTH):
        if persrm.is_untrained:
            raise PersonalignError("an untrained PersRM gives every answer the reward 0 under every preference: "
                                   "name a trained one, or learn from the offline judge's scores")
        self.scorer = SequenceScorer(persrm.eval(), train_backbone=False)
        context = getattr(persrm.causal_lm.config, "max_position_embeddings", None) or max_length
        self.tokenizer, self.dimensions, self.max_length = tokenizer, dimensions, min(max_length, context)
        self.texts = [catalog.lookup(name).text for name in dimensions]
        # the reference pass switches the adapter off on the shared backbone: one caller at a time
        self._lock = threading.Lock()

    def __call__(self, prompt: str, answers: list[str]) -> list[list[float]]:
        tokens = [tuple(self.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
        device = next(self.scorer.parameters()).device
        columns = []
        with self._lock, torch.inference_mode():
            for text in self.texts:  # one dimension at a time: a long answer's logits stay small
                prompt_ids = tuple(render_ids(self.tokenizer, prompt, text))
                room = max(self.max_length - len(prompt_ids), 0)
                rows = collate([prompt_ids] * len(answers), [t[:room] for t in tokens],
                               pad_id_of(self.tokenizer)).to(device)
                columns.append((self.scorer(rows) - self.scorer(rows, reference=True)).tolist())
        return [list(row) for row in zip(*columns)]
