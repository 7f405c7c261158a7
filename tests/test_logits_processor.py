"""PADLogitsProcessor inside a plain `model.generate(...)` picks exactly what the engine picks."""

import pytest
import torch

from personalign.decoding.engine import Engine
from personalign.decoding.logits_processor import PADLogitsProcessor
from personalign.decoding.request import GenerationRequest
from personalign.errors import PersonalignError
from personalign.preferences import Preference
from personalign.prompts import render_ids
from personalign.reward_model import PersonalizedRewardModel
from tiny import tiny_llama

PROMPTS = ["Explain how rain forms in the clouds above the sea, step by step.", "Hi"]
EOS = 2
N = 12
BETA = 1.5
TOP_K = 10


def perturbed_head(persrm, seed=1, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        persrm.head.weight.add_(scale * torch.randn(persrm.head.weight.shape, generator=gen))
    return persrm


def perturbed_lora(persrm, seed=2, scale=0.5):
    persrm.add_lora(r=4)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in persrm.backbone.named_parameters():
            if "lora_B" in name:
                param.add_(scale * torch.randn(param.shape, generator=gen))
    return persrm.eval()


def left_pad(rows: list[list[int]]):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), EOS, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    return ids, mask


def until_eos(tokens: list[int]) -> list[int]:
    return tokens[:tokens.index(EOS) + 1] if EOS in tokens else tokens


def generate_with(base, rows, processors):
    ids, mask = left_pad(rows)
    out = base.generate(ids, attention_mask=mask, logits_processor=processors, do_sample=False, max_new_tokens=N,
                        pad_token_id=EOS)
    return [until_eos(r) for r in out[:, ids.shape[1]:].tolist()]


@pytest.fixture(params=["head", "head+lora"])
def models(request):
    """A tiny base and a PersRM on a separate tiny backbone (perturbed head, optionally a LoRA adapter)."""
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    if request.param == "head+lora":
        persrm = perturbed_lora(persrm)
    return tiny_llama(0), persrm


@pytest.mark.parametrize("pref", ["Answer like a pirate", "concise"])
def test_released_form_matches_the_engine(models, smol_tokenizer, pref):
    base, persrm = models
    pref = Preference.parse(pref)
    expected = [r.token_ids for r in Engine(base, smol_tokenizer, persrm, reward_form="released").generate(
        [GenerationRequest(p, pref, beta=BETA, top_k=TOP_K, max_new_tokens=N) for p in PROMPTS])]
    rows = [render_ids(smol_tokenizer, p, pref.text) for p in PROMPTS]
    assert len(rows[0]) != len(rows[1])
    ids, mask = left_pad(rows)
    processor = PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K, prompt_attention_mask=mask)
    assert generate_with(base, rows, [processor]) == expected
    plain = generate_with(base, rows, [])
    assert plain != expected, "the reward never changed a choice: the test proves nothing"


def test_decoupled_form_matches_the_engine(models, smol_tokenizer):
    base, persrm = models
    pref = Preference.parse("Answer like a pirate")
    expected = [r.token_ids for r in Engine(base, smol_tokenizer, persrm).generate(
        [GenerationRequest(p, pref, beta=BETA, top_k=TOP_K, max_new_tokens=N, reward="decoupled") for p in PROMPTS])]
    released = [r.token_ids for r in Engine(base, smol_tokenizer, persrm).generate(
        [GenerationRequest(p, pref, beta=BETA, top_k=TOP_K, max_new_tokens=N, reward="released") for p in PROMPTS])]
    assert expected != released, "the two reward forms agree here: the test proves nothing"
    rows = [render_ids(smol_tokenizer, p, pref.text) for p in PROMPTS]
    _, mask = left_pad(rows)
    processor = PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K, prompt_attention_mask=mask,
                                   reference_prompt_ids=[render_ids(smol_tokenizer, p, None) for p in PROMPTS])
    assert generate_with(base, rows, [processor]) == expected


def test_single_unpadded_prompt_matches_the_engine(smol_tokenizer):
    base, persrm = tiny_llama(0), perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    request = GenerationRequest(PROMPTS[0], "humor", beta=3.0, top_k=4, max_new_tokens=N, reward="released")
    expected = Engine(base, smol_tokenizer, persrm).generate([request])[0].token_ids
    row = render_ids(smol_tokenizer, PROMPTS[0], "humor")
    assert generate_with(base, [row], [PADLogitsProcessor(persrm, beta=3.0, top_k=4)]) == [expected]


def test_only_top_k_candidates_survive(smol_tokenizer):
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    row = render_ids(smol_tokenizer, PROMPTS[1], "concise")
    scores = torch.randn(1, persrm.vocab_size)
    out = PADLogitsProcessor(persrm, beta=1.0, top_k=3)(torch.tensor([row]), scores)
    assert torch.isfinite(out).sum() == 3
    assert set(out[0].isfinite().nonzero().flatten().tolist()) == set(scores[0].topk(3).indices.tolist())


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": float("nan")}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"top_k": 0}, "top_k"),
    ({"top_k": -3}, "top_k"),
    ({"top_k": 2.5}, "top_k"),
    ({"top_k": True}, "top_k"),
])
def test_invalid_settings_are_errors(kwargs, message):
    persrm = PersonalizedRewardModel(tiny_llama(1))
    with pytest.raises(PersonalignError, match=message):
        PADLogitsProcessor(persrm, **kwargs)


def test_reference_prompts_must_match_the_batch(smol_tokenizer):
    persrm = PersonalizedRewardModel(tiny_llama(1))
    row = render_ids(smol_tokenizer, PROMPTS[1], "concise")
    processor = PADLogitsProcessor(persrm, reference_prompt_ids=[row, row])
    with pytest.raises(PersonalignError, match="one prompt per batch row"):
        processor(torch.tensor([row]), torch.randn(1, persrm.vocab_size))


def test_vocabulary_mismatch_is_a_clear_error(smol_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    small = LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    row = render_ids(smol_tokenizer, PROMPTS[1], "concise")
    assert max(row) >= 1000
    with pytest.raises(PersonalignError, match="vocabulary"):
        PADLogitsProcessor(PersonalizedRewardModel(small))(torch.tensor([row]), torch.randn(1, 49152))
