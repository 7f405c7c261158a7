"""A Llama model for vLLM that also runs the PersRM, for PAD's released rule (PAD_SPEC section 3).

The PersRM reads the same token ids as the base (the released rule). Two forms:
- head only (no adapter): the PersRM is the base backbone plus its head, logits U(W h + b) from the base's own
  final hidden state h: one backbone pass;
- its own backbone (a LoRA PersRM merged, or any PersRM): a second Llama stack inside the same vLLM model, so its
  attention layers get their own paged KV cache and are sharded like the base under tensor parallelism.
`compute_logits` returns the base's logits unchanged (a request without PAD decodes plainly) and leaves the base's
top-k ids and the PersRM's logits there for `PadLogitsProcessor`, which applies each request's beta and k.

The model directory is written by `personalign.vllm_plugin.export` (config keys `personalign_pad`).
"""

import torch
from torch import nn
from vllm.config import VllmConfig
from vllm.distributed import get_pp_group
from vllm.model_executor.models.llama import LlamaForCausalLM, LlamaModel
from vllm.model_executor.models.utils import maybe_prefix

from .step import LAST, Step


class PadLlamaForCausalLM(LlamaForCausalLM):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "", **kwargs):
        super().__init__(vllm_config=vllm_config, prefix=prefix, **kwargs)
        settings = self.config.personalign_pad
        if vllm_config.speculative_config is not None:
            raise ValueError("PAD on vLLM cannot run with speculative decoding: drafts skip the PersRM's rule")
        self.own_backbone = bool(settings["own_backbone"])
        if self.own_backbone and vllm_config.parallel_config.pipeline_parallel_size > 1:
            raise ValueError("a PersRM with its own backbone does not run under pipeline parallelism yet; use "
                             "--tensor-parallel-size, or a head-only PersRM")
        self.max_top_k = int(settings["max_top_k"])
        hidden = self.config.hidden_size
        self.persrm_head = nn.Linear(hidden, hidden, bias=True)
        self.persrm_model = (LlamaModel(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "persrm_model"))
                             if self.own_backbone else None)

    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None):
        base = self.model(input_ids, positions, intermediate_tensors, inputs_embeds)
        if self.persrm_model is None or not get_pp_group().is_last_rank:
            return base
        # both stacks' final states side by side: vLLM picks the sampled rows, compute_logits splits them
        return torch.cat([base, self.persrm_model(input_ids, positions, None, None)], dim=-1)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        hidden = self.config.hidden_size
        base_hidden = hidden_states[..., :hidden]
        persrm_hidden = hidden_states[..., hidden:] if self.own_backbone else base_hidden
        logits = self.logits_processor(self.lm_head, base_hidden)
        persrm_logits = self.logits_processor(self.lm_head, self.persrm_head(persrm_hidden))
        if logits is None:  # a rank that does not sample
            return None
        k = min(self.max_top_k, logits.shape[-1])
        candidates = logits.topk(k, dim=-1).indices
        LAST[0] = Step(candidates, persrm_logits.gather(-1, candidates))
        return logits
