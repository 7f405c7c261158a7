"""PAD as a transformers LogitsProcessor, for users who keep their own `model.generate(...)` call.

    processor = PADLogitsProcessor(persrm, beta=1.0, top_k=10)
    model.generate(**inputs, logits_processor=[processor], do_sample=False)

The PersRM keeps its own KV cache and is fed only the newest token at each call. Every non-candidate token gets
-inf; candidates get z_b + beta * r, so greedy `generate` picks what the engine picks, and sampling `generate`
(temperature T) samples softmax(score / T) over the candidates, the released "topk" mode. The engine is faster
(it shares one forward between base and PersRM); this path trades that for drop-in use. A processor serves one
`generate` call. A PersRM whose LoRA adapter sits on the generating model itself is not supported here (generate
would run the base through the adapter): load it on a separate copy of the backbone.
"""

import torch
from transformers import LogitsProcessor

from ..errors import PersonalignError
from ..reward_model import ADAPTER_NAME, PersonalizedRewardModel
from .request import check_beta_top_k
from .rules import NEG_INF, pad_reward, pad_scores, top_candidates
from .runner import RowRunner


class PADLogitsProcessor(LogitsProcessor):
    def __init__(self, persrm: PersonalizedRewardModel, beta: float = 1.0, top_k: int = 10,
                 prompt_attention_mask: torch.Tensor | None = None,
                 reference_prompt_ids: list[list[int]] | None = None):
        """prompt_attention_mask: the mask of left-padded batched prompts (None: no padding).
        reference_prompt_ids: per row, the prompt without the preference, for the decoupled reward
        (None: the released reward, against the base model's own logits)."""
        check_beta_top_k(beta, top_k)
        self.persrm = persrm.eval()
        self.beta, self.top_k = beta, top_k
        self.prompt_attention_mask = prompt_attention_mask
        self.reference_prompt_ids = reference_prompt_ids
        self.runner = RowRunner(persrm.backbone, ADAPTER_NAME if persrm.has_adapter else None)
        self._hidden = None

    @torch.inference_mode()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch = input_ids.shape[0]
        if scores.shape[-1] != self.persrm.vocab_size:  # before the PersRM reads ids it may not have
            raise PersonalignError(f"the PersRM's vocabulary ({self.persrm.vocab_size}) differs from the "
                                   f"generating model's ({scores.shape[-1]})")
        if self._hidden is None:
            self._start(input_ids)
        else:
            rows = input_ids[:, -1].repeat(self.runner.num_rows // batch)
            self._hidden = self.runner.step(rows.to(self.runner.device))
        top_k = torch.full((batch,), min(self.top_k, scores.shape[-1]), device=scores.device)
        cand, base_c, live = top_candidates(scores.float(), top_k)
        rm_cand = cand.to(self.runner.device)
        policy_c = self.persrm.candidate_logits(self._hidden[:batch], rm_cand).float().to(scores.device)
        reference_c = base_c
        if self.reference_prompt_ids:
            reference_c = self.persrm.candidate_logits(self._hidden[batch:], rm_cand).float().to(scores.device)
        reward = pad_reward(policy_c[:, None], torch.ones(batch, 1, device=scores.device), reference_c, live)
        out = torch.full_like(scores, NEG_INF)
        return out.scatter(1, cand, pad_scores(base_c, reward, torch.full((batch,), self.beta), live).to(scores.dtype))

    def _start(self, input_ids: torch.LongTensor) -> None:
        mask = self.prompt_attention_mask
        prompts = [row[m.bool()].tolist() if mask is not None else row.tolist()
                   for row, m in zip(input_ids, mask if mask is not None else input_ids)]
        if self.reference_prompt_ids:
            if len(self.reference_prompt_ids) != len(prompts):
                raise PersonalignError("reference_prompt_ids needs one prompt per batch row")
            prompts += [list(p) for p in self.reference_prompt_ids]
        self._hidden = self.runner.add(prompts, [self.persrm.has_adapter] * len(prompts))
