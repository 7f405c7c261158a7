"""PAD as a transformers LogitsProcessor, for users who keep their own `model.generate(...)` call.

    processor = pad_logits_processor(model, beta=1.0, top_k=10)  # personalign.api: PersRM loaded beside `model`
    inputs = processor.prepare(tokenizer, ["How do vaccines work?"], "concise")
    model.generate(**inputs, logits_processor=[processor], do_sample=False)

The PersRM keeps its own KV cache and is fed only the newest token at each call. Every non-candidate token gets
-inf; candidates get z_b + beta * r, so greedy `generate` picks what the engine picks, and sampling `generate`
(temperature T) samples softmax(score / T) over the candidates, the released "topk" mode. The engine is faster
(it shares one forward between base and PersRM); this path trades that for drop-in use.

A PersRM whose LoRA adapter sits on the generating model itself is refused: peft injects the adapter into the
backbone's own layers, so `generate` would run the base through it. The processor cannot see the model that calls
it, so a PersRM with an adapter needs `model=` (the generating model) at construction, which must not carry a
PersRM's adapter (any `persrm` LoRA layer, e.g. `load_engine().model`'s); load such a PersRM on a copy of the
backbone (`pad_logits_processor` does).

MetaAlign's policy on this path (`personalign.load_policy`: the base with the policy's adapter) is a model like any
other for `generate`: `prepare(..., method="metaalign-pad")` renders its prompts as that method declares
(decoding/methods.py: the policy reads the meta-prompt, the PersRM PAD's template), passing the PersRM's own prompts
as `persrm_prompt_ids`; `meta_prompt_inputs` gives the inputs of the policy alone (method metaalign).

One processor serves several `generate` calls: a call that does not continue the previous one (another batch size,
or ids that are not the previous ones plus one token) starts afresh. The prompt attention mask and reference
prompts belong to one batch: the same prompts may be generated from again, other prompts need `prepare(...)` or
`reset(...)` first.
"""

from collections.abc import Sequence

import torch
from transformers import BatchEncoding, LogitsProcessor

from ..errors import PersonalignError
from ..padding import left_padded
from ..preferences import Preference
from ..prompts import Messages
from ..reward_model import ADAPTER_NAME, PersonalizedRewardModel
from .methods import REGISTRY
from .request import GenerationRequest, check_beta_top_k
from .rules import NEG_INF, pad_reward, pad_scores, top_candidates
from .runner import RowRunner


class PADLogitsProcessor(LogitsProcessor):
    def __init__(self, persrm: PersonalizedRewardModel, beta: float = 1.0, top_k: int = 10,
                 prompt_attention_mask: torch.Tensor | None = None,
                 reference_prompt_ids: list[list[int]] | None = None, *, model=None,
                 persrm_prompt_ids: list[list[int]] | None = None, end_ids: Sequence[int] = ()):
        """prompt_attention_mask: the mask of left-padded batched prompts (None: no padding).
        reference_prompt_ids: per row, the prompt without the preference, for the decoupled reward
        (None: the released reward, against the base model's own logits).
        persrm_prompt_ids: per row, the prompt the PersRM reads when it is not the generating model's
        (metaalign-pad: PAD's template while the policy reads the meta-prompt; None: the generating model's).
        model: the model whose `generate` calls this processor; required when the PersRM has a LoRA adapter.
        end_ids: end_of_turn="base" (README, How PAD is decoded): these tokens (the end of turn) get no reward and
        compete on the base's logit alone; empty, the released rule."""
        check_beta_top_k(beta, top_k)
        if persrm.has_adapter and model is None:
            raise PersonalignError("this PersRM has a LoRA adapter: pass model=<the model that calls generate>, "
                                   "or build the processor with personalign.pad_logits_processor(model)")
        if model is not None and _runs_through_adapter(model):
            raise PersonalignError("a PersRM's LoRA adapter sits on the generating model, so generate would run "
                                   "the base through it: generate with a plain model (load_causal_lm) and load the "
                                   "PersRM on a copy of it (personalign.pad_logits_processor(model) does)")
        self.persrm = persrm.eval()
        self.beta, self.top_k = beta, top_k
        self.end_ids = torch.tensor(sorted(end_ids), dtype=torch.long)
        self.reset(prompt_attention_mask, reference_prompt_ids, persrm_prompt_ids)

    def reset(self, prompt_attention_mask: torch.Tensor | None = None,
              reference_prompt_ids: list[list[int]] | None = None,
              persrm_prompt_ids: list[list[int]] | None = None) -> None:
        """Forget the previous `generate` call; the arguments describe the next call's prompts (see __init__)."""
        self.prompt_attention_mask = prompt_attention_mask
        self.reference_prompt_ids = reference_prompt_ids
        self.persrm_prompt_ids = persrm_prompt_ids
        self.runner = RowRunner(self.persrm.backbone, (ADAPTER_NAME,) if self.persrm.has_adapter else ())
        self._hidden = self._seen = self._prompt_ids = None

    def prepare(self, tokenizer, prompts: "list[str | Messages]", preference: "str | Preference", *,
                method: str = "pad", system_info: str | None = None) -> BatchEncoding:
        """`prompts` rendered as `method` declares (pad: the preference inside PAD's template, for model and PersRM;
        metaalign-pad: the meta-prompt, with System Info `system_info`, for the policy and PAD's template for the
        PersRM), left-padded, with their attention mask, for `model.generate(**inputs, ...)`; resets the processor
        for this batch."""
        if method not in ("pad", "metaalign-pad"):
            raise PersonalignError(f"prepare renders the pad and metaalign-pad methods, not {method!r}")
        requests = _requests("prepare", prompts, preference, method, system_info)
        declared = REGISTRY[method]
        text = requests[0].preference.text
        inputs = _left_padded(tokenizer, [declared.base_row(tokenizer, r, text) for r in requests],
                              self.runner.device)
        own = [declared.guide_rows(tokenizer, r, text) for r in requests] if declared.guide_rows else None
        self.reset(prompt_attention_mask=inputs["attention_mask"], persrm_prompt_ids=own)
        return inputs

    @torch.inference_mode()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch = input_ids.shape[0]
        if scores.shape[-1] != self.persrm.vocab_size:  # before the PersRM reads ids it may not have
            raise PersonalignError(f"the PersRM's vocabulary ({self.persrm.vocab_size}) differs from the "
                                   f"generating model's ({scores.shape[-1]})")
        if self._seen is not None and not self._continues(input_ids):
            self._restart(input_ids)
        if self._seen is None:
            self._start(input_ids)
        else:
            rows = input_ids[:, -1].repeat(self.runner.num_rows // batch)
            self._hidden = self.runner.step(rows.to(self.runner.device))
        self._seen = input_ids
        top_k = torch.full((batch,), min(self.top_k, scores.shape[-1]), device=scores.device)
        cand, base_c, live = top_candidates(scores.float(), top_k)
        rm_cand = cand.to(self.runner.device)
        policy_c = self.persrm.candidate_logits(self._hidden[:batch], rm_cand).float().to(scores.device)
        reference_c = base_c
        if self.reference_prompt_ids:
            reference_c = self.persrm.candidate_logits(self._hidden[batch:], rm_cand).float().to(scores.device)
        neutral = torch.isin(cand, self.end_ids.to(cand.device)) if len(self.end_ids) else None
        reward = pad_reward(policy_c[:, None], torch.ones(batch, 1, device=scores.device), reference_c, live, neutral)
        out = torch.full_like(scores, NEG_INF)
        return out.scatter(1, cand, pad_scores(base_c, reward, torch.full((batch,), self.beta), live).to(scores.dtype))

    def _continues(self, input_ids: torch.LongTensor) -> bool:
        """Whether `input_ids` is the previous call's ids plus one token (the same generate call)."""
        seen = self._seen
        return input_ids.shape == (seen.shape[0], seen.shape[1] + 1) and torch.equal(input_ids[:, :-1], seen)

    def _restart(self, input_ids: torch.LongTensor) -> None:
        """A new generate call: the same prompts again keep their mask and reference prompts, others need theirs."""
        per_batch = self.prompt_attention_mask is not None or self.reference_prompt_ids or self.persrm_prompt_ids
        if per_batch and not torch.equal(input_ids, self._prompt_ids):
            raise PersonalignError("this processor's prompt_attention_mask/reference/PersRM prompt ids belong to the "
                                   "prompts of its previous generate call: call processor.prepare(...) or "
                                   "processor.reset(prompt_attention_mask=...) before a new batch")
        self.reset(self.prompt_attention_mask, self.reference_prompt_ids, self.persrm_prompt_ids)

    def _start(self, input_ids: torch.LongTensor) -> None:
        self._prompt_ids = input_ids
        mask = self.prompt_attention_mask
        if mask is not None and mask.shape != input_ids.shape:
            raise PersonalignError(f"prompt_attention_mask has shape {tuple(mask.shape)} but the prompts have "
                                   f"{tuple(input_ids.shape)}: pass these prompts' mask (processor.prepare(...) or "
                                   "processor.reset(prompt_attention_mask=...))")
        prompts = [row[m.bool()].tolist() if mask is not None else row.tolist()
                   for row, m in zip(input_ids, mask if mask is not None else input_ids)]
        if self.persrm_prompt_ids is not None:
            if len(self.persrm_prompt_ids) != len(prompts):
                raise PersonalignError("persrm_prompt_ids needs one prompt per batch row")
            prompts = [list(p) for p in self.persrm_prompt_ids]
        if self.reference_prompt_ids:
            if len(self.reference_prompt_ids) != len(prompts):
                raise PersonalignError("reference_prompt_ids needs one prompt per batch row")
            prompts += [list(p) for p in self.reference_prompt_ids]
        adapter = ADAPTER_NAME if self.persrm.has_adapter else None
        self._hidden = self.runner.add(prompts, [adapter] * len(prompts))


def meta_prompt_inputs(tokenizer, prompts: "list[str | Messages]", preference: "str | Preference | None" = None, *,
                       system_info: str | None = None, device=None) -> BatchEncoding:
    """`prompts` under the meta-prompt (System Info `system_info`, the preference as User Info), left-padded with
    their attention mask, on `device` (None: the CPU): the inputs of a MetaAlign policy's own `generate` (method
    metaalign)."""
    requests = _requests("meta_prompt_inputs", prompts, preference, "metaalign", system_info)
    declared = REGISTRY["metaalign"]
    rows = [declared.base_row(tokenizer, r, r.preference.text) for r in requests]
    return _left_padded(tokenizer, rows, device)


def _requests(caller: str, prompts, preference, method: str, system_info: str | None) -> list[GenerationRequest]:
    """One checked request per prompt (the checks and defaults of the engine's requests); one preference only.
    `caller` names the function in the errors."""
    if isinstance(prompts, str) or not prompts:
        raise PersonalignError(f"{caller} takes a non-empty list of prompts (wrap a single prompt in a list)")
    requests = [GenerationRequest(p, preference, method=method, system_info=system_info) for p in prompts]
    if len(requests[0].preference.components) > 1:
        raise PersonalignError(f"{caller} takes one preference (a catalog name or free text); "
                               "for a mixture use the engine (personalign.load_engine)")
    return requests


def _left_padded(tokenizer, rows: list[list[int]], device) -> BatchEncoding:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out: any id will do
    ids, mask = left_padded(rows, pad, device)
    return BatchEncoding({"input_ids": ids, "attention_mask": mask})


def _runs_through_adapter(model) -> bool:
    """Whether `model` runs through a PersRM's LoRA layers (peft injects them into the backbone's own modules)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) and ADAPTER_NAME in m.active_adapters for m in model.modules())
