"""Logit fusion (GenARM / MOD) and ARGS through the engine, against plain no-cache oracles."""

import pytest
import torch

from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest
from personalign.errors import PersonalignError
from personalign.preferences import Preference
from personalign.prompts import render_ids
from personalign.reward_model import PersonalizedRewardModel
from test_pad_engine import EOS, PROMPTS, full_logits, perturbed_head, persrm_logits
from tiny import tiny_llama


@torch.no_grad()
def fusion_oracle(base_fn, guide_fn, base_ids, guide_ids, weights, beta, k, n):
    generated = []
    for _ in range(n):
        base = base_fn(base_ids + generated).log_softmax(-1)
        guide = sum(w * guide_fn(ids + generated).log_softmax(-1) for ids, w in zip(guide_ids, weights))
        fused = base + beta * (guide - base)
        token = int(fused.topk(k).indices[0])
        generated.append(token)
        if token == EOS:
            break
    return generated


@pytest.fixture
def engine_fns(smol_tokenizer):
    base = tiny_llama(0)
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    return Engine(base, smol_tokenizer, persrm), full_logits(base), persrm_logits(persrm)


@pytest.mark.parametrize("pref", ["Answer like a pirate", "concise=0.7,friendly=0.3"])
def test_fusion_matches_oracle(engine_fns, smol_tokenizer, pref):
    engine, base_fn, guide_fn = engine_fns
    pref = Preference.parse(pref) if "=" not in pref else Preference.from_dims(pref)
    requests = [GenerationRequest(p, pref, method="fusion", beta=1.5, max_new_tokens=10) for p in PROMPTS]
    results = engine.generate(requests)
    texts = [pref.text] if len(pref.components) == 1 else pref.texts
    for prompt, result in zip(PROMPTS, results):
        guide_ids = [render_ids(smol_tokenizer, prompt, t) for t in texts]
        expected = fusion_oracle(base_fn, guide_fn, render_ids(smol_tokenizer, prompt, None), guide_ids,
                                 pref.weights, 1.5, 10, 10)
        assert result.token_ids == expected
    neutral = engine.generate([GenerationRequest(PROMPTS[0], method="base", max_new_tokens=10)])[0]
    assert neutral.token_ids != results[0].token_ids, "the guide never changed a choice: the test proves nothing"


def test_fusion_beta_one_with_untrained_guide_is_prompting(smol_tokenizer):
    """log p_base + 1 * (log p_guide - log p_base) = log p_guide: the base model reading the preference."""
    base = tiny_llama(0)
    engine = Engine(base, smol_tokenizer)
    pref = Preference.parse("concise")
    fused, prompted = engine.generate([GenerationRequest(PROMPTS[1], pref, method=m, beta=1.0, max_new_tokens=12)
                                       for m in ("fusion", "prompt")])
    assert fused.token_ids == prompted.token_ids


def letter_reward(preferences, prompts, texts):
    """A toy sequence reward: how many times the letter 'e' appears (so it must read the whole text)."""
    return [t.count("e") for t in texts]


@torch.no_grad()
def args_oracle(tok, base_fn, prompt, pref, beta, k, n):
    base_ids = render_ids(tok, prompt, pref.text)
    generated = []
    for _ in range(n):
        z_b = base_fn(base_ids + generated)
        logits, cand = z_b.topk(k)
        reward = torch.tensor([float(tok.decode(generated + [int(c)], skip_special_tokens=True).count("e"))
                               for c in cand])
        token = int(cand[(logits + beta * reward).argmax()])
        generated.append(token)
        if token == EOS:
            break
    return generated


def test_args_matches_oracle(smol_tokenizer):
    base = tiny_llama(0)
    calls = []

    def reward(preferences, prompts, texts):
        calls.append((preferences[0].text, prompts[0]))
        return letter_reward(preferences, prompts, texts)

    engine = Engine(base, smol_tokenizer, sequence_reward=reward)
    pref = Preference.parse("concise")
    results = engine.generate([GenerationRequest(p, pref, method="args", beta=3.0, top_k=5, max_new_tokens=10)
                               for p in PROMPTS])
    for prompt, result in zip(PROMPTS, results):
        assert result.token_ids == args_oracle(smol_tokenizer, full_logits(base), prompt, pref, 3.0, 5, 10)
    prompted = engine.generate([GenerationRequest(PROMPTS[0], pref, method="prompt", max_new_tokens=10)])[0]
    assert prompted.token_ids != results[0].token_ids, "the reward never changed a choice"
    assert calls[0] == (pref.text, PROMPTS[0])  # the reward sees the preference and the user's prompt


def test_args_without_a_sequence_reward_is_refused(smol_tokenizer):
    engine = Engine(tiny_llama(0), smol_tokenizer)
    with pytest.raises(PersonalignError, match="sequence-level reward"):
        engine.submit(GenerationRequest("hi", "concise", method="args"))


def test_all_methods_in_one_batch_equal_each_alone(smol_tokenizer):
    base = tiny_llama(0)
    engine = Engine(base, smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1))),
                    sequence_reward=letter_reward)
    requests = [GenerationRequest(PROMPTS[0], "concise", method="fusion", beta=2.0, top_k=4, max_new_tokens=8),
                GenerationRequest(PROMPTS[1], "friendly", method="args", beta=2.0, top_k=6, max_new_tokens=8),
                GenerationRequest(PROMPTS[1], "expert", method="pad", beta=1.5, max_new_tokens=8),
                GenerationRequest(PROMPTS[0], method="base", max_new_tokens=8)]
    together = engine.generate(requests)
    for request, result in zip(requests, together):
        assert engine.generate([request])[0].token_ids == result.token_ids


def tiny_reward_model(seed=3):
    from transformers import LlamaForSequenceClassification
    base = tiny_llama(seed)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(base.config.__class__(**{**base.config.to_dict(), "num_labels": 1}))
    with torch.no_grad():
        model.score.weight.mul_(200)  # rewards big enough to overturn the base's preferences
    return model.eval()


@torch.no_grad()
def cached_args_oracle(tok, base_fn, reward_model, prompt, pref, beta, k, n):
    """ARGS written plainly: the reward model re-reads the whole conversation for every candidate."""
    base_ids, rm_ids = render_ids(tok, prompt, pref.text), render_ids(tok, prompt, None)
    generated = []
    for _ in range(n):
        logits, cand = base_fn(base_ids + generated).topk(k)
        batch = torch.tensor([rm_ids + generated + [int(c)] for c in cand])
        hidden = reward_model.model(batch).last_hidden_state[:, -1]
        token = int(cand[(logits + beta * reward_model.score(hidden).squeeze(-1)).argmax()])
        generated.append(token)
        if token == EOS:
            break
    return generated


def test_args_with_a_kv_cached_reward_model_matches_oracle(smol_tokenizer):
    from personalign.decoding.sequence_rm import CachedSequenceReward
    base, reward_model = tiny_llama(0), tiny_reward_model()
    engine = Engine(base, smol_tokenizer, sequence_reward=CachedSequenceReward(reward_model))
    pref = Preference.parse("harmless")
    requests = [GenerationRequest(p, pref, method="args", beta=1.0, top_k=4, max_new_tokens=8) for p in PROMPTS]
    requests.append(GenerationRequest(PROMPTS[0], pref, method="prompt", max_new_tokens=8))  # no reward row
    results = engine.generate(requests)
    for prompt, result in zip(PROMPTS, results):
        assert result.token_ids == cached_args_oracle(smol_tokenizer, full_logits(base), reward_model, prompt, pref,
                                                      1.0, 4, 8)
    assert results[0].token_ids != results[2].token_ids, "the reward never changed a choice"


def test_a_reward_model_over_another_vocabulary_is_refused(smol_tokenizer):
    from transformers import LlamaConfig, LlamaForSequenceClassification
    from personalign.decoding.sequence_rm import CachedSequenceReward
    other = LlamaForSequenceClassification(LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32,
                                                       num_hidden_layers=1, num_attention_heads=2,
                                                       num_key_value_heads=1, num_labels=1))
    with pytest.raises(PersonalignError, match="vocabulary"):
        Engine(tiny_llama(0), smol_tokenizer, sequence_reward=CachedSequenceReward(other))
