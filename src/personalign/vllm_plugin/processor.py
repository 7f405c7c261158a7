"""Each request's PAD settings, applied to the logits vLLM samples from (a V1 logits processor).

A request asks for PAD through `SamplingParams.extra_args` (`vllm_xargs` on vLLM's own server):
`{"pad_beta": 1.0, "pad_top_k": 10}` (top-k optional, default the model's; reward form "released", the only one a
single sequence can compute). Its row becomes the released score on the base's top-k, -inf elsewhere:
score = z_b + beta * (log-softmax_C z_theta - log-softmax_C z_b), the same functions the transformers engine uses.
Rows without `pad_beta` are left alone.
"""

import logging
from dataclasses import dataclass

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from ..decoding.rules import NEG_INF, pad_reward, pad_scores
from .step import LAST

REWARD_FORMS = ("released",)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PadParams:
    beta: float
    top_k: int | None
    end_ids: tuple[int, ...] = ()  # end_of_turn="base": candidates scored by the base alone (rules.pad_reward)


def pad_params(params: SamplingParams) -> PadParams | None:
    """The request's PAD settings, or None when it does not ask for PAD; a ValueError names a bad one."""
    extra = params.extra_args or {}
    if "pad_beta" not in extra:
        return None
    beta, top_k, form = extra["pad_beta"], extra.get("pad_top_k"), extra.get("pad_reward_form", "released")
    end_ids = extra.get("pad_end_ids", [])
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ValueError(f"pad_beta must be a number >= 0, got {beta!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"pad_top_k must be an integer >= 1, got {top_k!r}")
    if not isinstance(end_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in end_ids):
        raise ValueError(f"pad_end_ids must be a list of token ids, got {end_ids!r}")
    if form not in REWARD_FORMS:
        raise ValueError(f"pad_reward_form {form!r} cannot run on vLLM (one token sequence per request): use "
                         f"{' or '.join(REWARD_FORMS)}, or personalign's transformers backend")
    if params.prompt_logprobs is not None:
        raise ValueError("prompt_logprobs cannot be combined with PAD on vLLM")
    return PadParams(float(beta), top_k, tuple(end_ids))


class PadLogitsProcessor(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        settings = getattr(vllm_config.model_config.hf_config, "personalign_pad", None)
        self.max_top_k = int(settings["max_top_k"]) if settings else None  # None: not a PAD model
        self.rows: dict[int, PadParams] = {}  # batch row -> its settings
        self.warned = False

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        pad_params(sampling_params)

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, lambda params, _, __: pad_params(params))

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        if self.max_top_k is None:  # raising here would stop the engine for every user: say it, decode plainly
            if not self.warned:
                logger.error("pad_beta was given, but this model is not a personalign PAD model (export one with "
                             "personalign.vllm_plugin.export): those requests decode plainly")
                self.warned = True
            return logits
        step = LAST[0]
        rows = torch.tensor(sorted(self.rows), device=logits.device)
        settings = [self.rows[int(r)] for r in rows]
        top_k = torch.tensor([min(s.top_k or self.max_top_k, self.max_top_k) for s in settings], device=logits.device)
        beta = torch.tensor([s.beta for s in settings], device=logits.device, dtype=logits.dtype)
        candidates = step.candidates[rows]
        live = torch.arange(candidates.shape[1], device=logits.device)[None, :] < top_k[:, None]
        base_c = logits[rows].gather(-1, candidates)
        persrm_c = step.persrm_logits[rows].to(logits.dtype)
        ends = [torch.isin(candidates[i], torch.tensor(s.end_ids, dtype=candidates.dtype, device=logits.device))
                for i, s in enumerate(settings)]
        neutral = torch.stack(ends) if any(s.end_ids for s in settings) else None
        reward = pad_reward(persrm_c[:, None, :], torch.ones_like(beta)[:, None], base_c, live, neutral)
        scored = torch.full_like(logits[rows], NEG_INF).scatter_(-1, candidates, pad_scores(base_c, reward, beta, live))
        logits[rows] = scored
        return logits
