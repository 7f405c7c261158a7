"""The engine against a plain no-cache implementation of PAD's released rule, and its equivalences."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest
from personalign.preferences import Preference
from personalign.prompts import render_ids
from personalign.reward_model import ADAPTER_NAME, PersonalizedRewardModel
from tiny import tiny_llama

PROMPTS = ["Explain how rain forms.", "Give me a tip for learning to cook"]
EOS = 2


@torch.no_grad()
def oracle(base_logits, rm_logits, base_ids, policy_ids, weights, reference_ids, beta, k, n, eos=EOS,
           base_ends=False):
    """The released loop, written plainly: every step re-encodes everything, one prompt at a time. base_ends:
    end_of_turn="base", the end token's reward is 0 and the others' log-softmaxes leave it out."""
    generated = []
    for _ in range(n):
        z_b = base_logits(base_ids + generated)
        cand = z_b.topk(k).indices
        scored = cand[cand != eos] if base_ends else cand
        l_b = z_b[scored].log_softmax(-1)
        l_theta = sum(w * rm_logits(ids + generated)[scored].log_softmax(-1) for ids, w in zip(policy_ids, weights))
        l_ref = l_b if reference_ids is None else rm_logits(reference_ids + generated)[scored].log_softmax(-1)
        reward = torch.zeros(k)
        reward[torch.isin(cand, scored)] = l_theta - l_ref
        score = z_b[cand] + beta * reward
        token = int(cand[score.argmax()])
        generated.append(token)
        if token == eos:
            break
    return generated


def full_logits(model):
    return lambda ids: model(torch.tensor([ids])).logits[0, -1].float()


def persrm_logits(persrm):
    return lambda ids: persrm(torch.tensor([ids]))[0, -1].float()


def perturbed_head(persrm, seed=1, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        persrm.head.weight.add_(scale * torch.randn(persrm.head.weight.shape, generator=gen))
    return persrm


def run_oracle(tok, base_fn, rm_fn, prompt, pref: Preference, beta, k=10, n=12, reward="released"):
    base_ids = render_ids(tok, prompt, pref.text)
    if len(pref.components) == 1:
        policy, weights = [base_ids], [1.0]
    else:
        policy, weights = [render_ids(tok, prompt, t) for t in pref.texts], pref.weights
    reference = render_ids(tok, prompt, None) if reward == "decoupled" else None
    return oracle(base_fn, rm_fn, base_ids, policy, weights, reference, beta, k, n)


@pytest.fixture(params=["separate", "shared-head", "shared-lora"])
def setup(request, smol_tokenizer):
    """(engine, base logits fn, PersRM logits fn) for the three ways a PersRM can be laid out."""
    base = tiny_llama(0)
    if request.param == "separate":
        persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
        base_fn = full_logits(base)
    elif request.param == "shared-head":
        persrm = perturbed_head(PersonalizedRewardModel(base))
        base_fn = full_logits(base)
    else:
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        persrm = PersonalizedRewardModel(get_peft_model(base, config, adapter_name=ADAPTER_NAME)).eval()
        peft_model = persrm.backbone

        def base_fn(ids):
            with peft_model.disable_adapter():
                return full_logits(base)(ids)
    engine = Engine(base, smol_tokenizer, persrm)
    return engine, base_fn, persrm_logits(persrm)


@pytest.mark.parametrize("reward", ["released", "decoupled"])
def test_engine_matches_oracle_token_for_token(setup, smol_tokenizer, reward):
    engine, base_fn, rm_fn = setup
    pref = Preference.from_text("Answer like a pirate")
    requests = [GenerationRequest(p, pref, beta=1.5, max_new_tokens=12, reward=reward) for p in PROMPTS]
    results = engine.generate(requests)
    for prompt, result in zip(PROMPTS, results):
        expected = run_oracle(smol_tokenizer, base_fn, rm_fn, prompt, pref, 1.5, reward=reward)
        assert result.token_ids == expected
    plain = engine.generate([GenerationRequest(PROMPTS[0], pref, method="prompt", max_new_tokens=12)])[0]
    assert plain.token_ids != results[0].token_ids, "the reward never changed a choice: the test proves nothing"


def test_weighted_mix_matches_oracle(setup, smol_tokenizer):
    engine, base_fn, rm_fn = setup
    pref = Preference.from_dims("concise=0.7,friendly=0.3")
    [result] = engine.generate([GenerationRequest(PROMPTS[1], pref, beta=2.0, max_new_tokens=10)])
    assert result.token_ids == run_oracle(smol_tokenizer, base_fn, rm_fn, PROMPTS[1], pref, 2.0, n=10,
                                          reward=engine.reward_form)


def test_end_of_turn_left_to_the_base_matches_oracle(smol_tokenizer):
    """end_of_turn="base": the end token competes on its base logit alone. The end token here is a candidate of
    the second step that the reward pushes down: the released rule never picks it, this one stops there."""
    base = tiny_llama(0)
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    engine = Engine(base, smol_tokenizer, persrm)
    pref = Preference.from_text("Answer like a pirate")
    ids = render_ids(smol_tokenizer, PROMPTS[0], pref.text)
    base_fn, rm_fn = full_logits(base), persrm_logits(persrm)
    first = oracle(base_fn, rm_fn, ids, [ids], [1.0], None, 1.0, 10, 1)
    cand = base_fn(ids + first).topk(10).indices.tolist()
    end = next(c for c in cand if oracle(base_fn, rm_fn, ids, [ids], [1.0], None, 1.0, 10, 2, eos=c,
                                         base_ends=True) == first + [c])
    engine.eos_ids = {end}
    request = dict(prompt=PROMPTS[0], preference=pref, beta=1.0, max_new_tokens=8)
    [released] = engine.generate([GenerationRequest(**request, end_of_turn="reward")])
    [left] = engine.generate([GenerationRequest(**request, end_of_turn="base")])
    assert left.token_ids == first + [end] and left.finish_reason == "eos"
    assert released.token_ids == oracle(base_fn, rm_fn, ids, [ids], [1.0], None, 1.0, 10, 8, eos=end)
    assert released.token_ids[:2] != first + [end], "the released rule stops there too: the test proves nothing"
    together = engine.generate([GenerationRequest(**request, end_of_turn="reward"),
                                GenerationRequest(**request, end_of_turn="base")])
    assert [r.token_ids for r in together] == [released.token_ids, left.token_ids]


def test_beta_zero_equals_base_generate(smol_tokenizer):
    base = tiny_llama(0)
    engine = Engine(base, smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1))))
    pref = Preference.parse("concise")
    [result] = engine.generate([GenerationRequest(PROMPTS[0], pref, beta=0.0, max_new_tokens=15)])
    ids = torch.tensor([result.prompt_token_ids])
    expected = base.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=15, do_sample=False,
                             pad_token_id=EOS)[0, ids.shape[1]:].tolist()
    assert result.token_ids == expected


def test_mixed_batch_equals_each_row_alone(smol_tokenizer):
    base = tiny_llama(0)
    engine = Engine(base, smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1))))
    requests = [
        GenerationRequest(PROMPTS[0], "concise", beta=1.0, max_new_tokens=10),
        GenerationRequest(PROMPTS[1], "I'm a nurse, skip the basics", beta=2.5, top_k=5, max_new_tokens=14),
        GenerationRequest("Hi", method="base", max_new_tokens=6),
        GenerationRequest(PROMPTS[1], "friendly=0.5,expert=0.5", beta=0.8, reward="released", max_new_tokens=9),
        GenerationRequest(PROMPTS[0], "humor", beta=1.0, temperature=0.7, top_p=0.9, seed=3, max_new_tokens=8),
    ]
    together = engine.generate(requests)
    alone = [engine.generate([copy.deepcopy(r)])[0] for r in requests]
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert [len(r.token_ids) for r in together] == [10, 14, 6, 9, 8]


def test_requests_joining_mid_flight_match_alone(smol_tokenizer):
    base = tiny_llama(0)
    engine = Engine(base, smol_tokenizer, perturbed_head(PersonalizedRewardModel(base)))
    first = GenerationRequest("A much longer first prompt about the history of tea in China", "concise",
                              max_new_tokens=12)
    late = GenerationRequest("Short one", "expert", beta=2.0, max_new_tokens=6)
    expected = [engine.generate([copy.deepcopy(r)])[0].token_ids for r in (first, late)]
    ids = {engine.submit(first): 0}
    results = {}
    for step in range(40):
        if step == 3:
            ids[engine.submit(late)] = 1
        for event in engine.step():
            if event.result:
                results[ids[event.request_id]] = event.result.token_ids
        if len(results) == 2:
            break
    assert [results[0], results[1]] == expected
    assert not engine.busy and engine.base_runner.num_rows == 0


def test_untrained_persrm_gives_zero_reward(smol_tokenizer):
    base = tiny_llama(0)
    persrm = PersonalizedRewardModel(base)
    ids = torch.tensor([render_ids(smol_tokenizer, PROMPTS[0], "concise")])
    assert torch.equal(persrm(ids), base(ids).logits)
    engine = Engine(base, smol_tokenizer, persrm, reward_form="released")
    guided, plain = engine.generate([GenerationRequest(PROMPTS[0], "concise", beta=5.0, max_new_tokens=10),
                                     GenerationRequest(PROMPTS[0], "concise", method="prompt", max_new_tokens=10)])
    assert guided.token_ids == plain.token_ids


def test_seeded_sampling_is_deterministic(smol_tokenizer):
    engine = Engine(tiny_llama(0), smol_tokenizer)
    make = lambda seed: GenerationRequest(PROMPTS[0], "humor", temperature=1.0, seed=seed, max_new_tokens=12)
    a, b, c = engine.generate([make(7), make(7), make(8)])
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_stops_at_eos_and_stop_strings(smol_tokenizer):
    engine = Engine(tiny_llama(0), smol_tokenizer)
    engine.eos_ids = {engine.generate([GenerationRequest("Hi", method="base", max_new_tokens=3)])[0].token_ids[1]}
    [ended] = engine.generate([GenerationRequest("Hi", method="base", max_new_tokens=20)])
    assert ended.finish_reason == "eos" and len(ended.token_ids) == 2
    [long] = engine.generate([GenerationRequest("Tell me more", method="base", max_new_tokens=20)])
    stop = long.text[5:8]
    [stopped] = engine.generate([GenerationRequest("Tell me more", method="base", max_new_tokens=20, stop=(stop,))])
    assert stopped.finish_reason == "stop" and stopped.text == long.text[:long.text.index(stop)]


def test_stream_deltas_join_to_the_text(smol_tokenizer):
    engine = Engine(tiny_llama(0), smol_tokenizer)
    request = GenerationRequest(PROMPTS[1], "friendly", max_new_tokens=16)
    deltas = list(engine.stream(copy.deepcopy(request)))
    assert len(deltas) > 1
    assert "".join(deltas) == engine.generate([request])[0].text


def test_vocabulary_mismatch_is_a_clear_error(smol_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM
    from personalign.errors import PersonalignError

    other = LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(PersonalignError, match="vocabulary"):
        Engine(tiny_llama(0), smol_tokenizer, PersonalizedRewardModel(other))


def test_models_with_logit_softcapping_are_refused(smol_tokenizer):
    from personalign.errors import PersonalignError

    base = tiny_llama(0)
    base.config.final_logit_softcapping = 30.0
    with pytest.raises(PersonalignError, match="soft-capping"):
        Engine(base, smol_tokenizer)


def test_cancelled_request_leaves_and_the_rest_decode_as_alone(smol_tokenizer):
    engine = Engine(tiny_llama(0), smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1))))
    keep = GenerationRequest(PROMPTS[0], "concise", beta=1.5, max_new_tokens=10)
    drop = GenerationRequest(PROMPTS[1], "expert", beta=1.5, max_new_tokens=10)
    expected = engine.generate([copy.deepcopy(keep)])[0].token_ids
    keep_id, drop_id = engine.submit(keep), engine.submit(drop)
    finished = {}
    for step in range(20):
        if step == 3:
            engine.cancel(drop_id)
        for event in engine.step():
            assert step < 3 or event.request_id == keep_id
            if event.result:
                finished[event.request_id] = event.result.token_ids
        if not engine.busy:
            break
    assert finished == {keep_id: expected}
    assert engine.base_runner.num_rows == 0 and engine.rm_runner.num_rows == 0
