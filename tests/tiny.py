"""Tiny random Llama models that share SmolLM2's tokenizer: milliseconds to build, real shapes and ids."""

from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB = 49152


def tiny_llama(seed: int = 0, tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(config).float().eval()
    # random init gives near-uniform logits; sharpen them so greedy choices are far from ties
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
    return model


class StandInEngine:
    """An engine stand-in for data jobs: a subclass's `answer(request)` writes each text; the batch after
    `fail_after_batches` raises KeyboardInterrupt, as a killed run would stop."""

    def __init__(self, fail_after_batches=None):
        self.requests, self.batches, self.fail_after = [], 0, fail_after_batches

    def generate(self, requests):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.requests += requests
        return [SimpleNamespace(text=self.answer(r), finish_reason=self.finish_reason(r)) for r in requests]

    def answer(self, request) -> str:
        raise NotImplementedError

    def finish_reason(self, request) -> str:
        return "eos"
