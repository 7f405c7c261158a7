"""The PersRM's reward of whole answers under each preference dimension: features for learning a user's weights.

    r_d(x, y) = sum_t [log pi_theta(y_t | s_t, p_d) - log pi_ref(y_t | s_t, p_d)]

is the summed token reward PAD decodes with (spec section 2), the preference p_d being dimension d's catalog text
in PAD's principle template; as in the released decoding rule, the reference (the backbone alone) reads the same
ids. One number per dimension: a user's choices between answers then fit a weight per dimension
(serving/preference_learner.py). The same sums, beside the backbone's log-likelihood, score multiple-choice
answers (evaluation/choices.py).
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


class AnswerScorer:
    """Per answer to a prompt under a preference text: the frozen backbone's summed log-likelihood (what preference
    prompting reads) and the PersRM's summed token reward r (what PAD adds, times beta, at each step)."""

    def __init__(self, persrm, tokenizer, max_length: int = MAX_LENGTH):
        self.scorer = SequenceScorer(persrm.eval(), train_backbone=False)
        context = getattr(persrm.causal_lm.config, "max_position_embeddings", None) or max_length
        self.tokenizer, self.max_length = tokenizer, min(max_length, context)
        # the reference pass switches the adapter off on the shared backbone: one caller at a time
        self._lock = threading.Lock()

    def __call__(self, prompt, preference: str, answers: list[str]) -> tuple[list[float], list[float]]:
        """(log-likelihoods, rewards), one of each per answer; an answer past the context is cut."""
        tokens = [tuple(self.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
        prompt_ids = tuple(render_ids(self.tokenizer, prompt, preference))
        room = max(self.max_length - len(prompt_ids), 0)
        device = next(self.scorer.parameters()).device
        rows = collate([prompt_ids] * len(answers), [t[:room] for t in tokens], pad_id_of(self.tokenizer)).to(device)
        with self._lock, torch.inference_mode():
            reference = self.scorer(rows, reference=True)
            return reference.tolist(), (self.scorer(rows) - reference).tolist()


class SummedRewardFeatures:
    """A Featurizer: (prompt, answers) -> per answer, the PersRM's summed reward under each of `dimensions`."""

    def __init__(self, persrm, tokenizer, dimensions: tuple[str, ...], max_length: int = MAX_LENGTH):
        if persrm.is_untrained:
            raise PersonalignError("an untrained PersRM gives every answer the reward 0 under every preference: "
                                   "name a trained one, or learn from the offline judge's scores")
        self.score = AnswerScorer(persrm, tokenizer, max_length)
        self.dimensions = dimensions
        self.texts = [catalog.lookup(name).text for name in dimensions]

    def __call__(self, prompt: str, answers: list[str]) -> list[list[float]]:
        # one dimension at a time: a long answer's logits stay small
        columns = [self.score(prompt, text, answers)[1] for text in self.texts]
        return [list(row) for row in zip(*columns)]
