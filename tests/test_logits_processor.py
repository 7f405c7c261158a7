"""PADLogitsProcessor inside a plain `model.generate(...)` picks exactly what the engine picks."""

import ast
import copy
import re
from pathlib import Path

import pytest
import torch

from personalign import api, pad_logits_processor
from personalign.decoding.engine import Engine
from personalign.decoding.logits_processor import PADLogitsProcessor, meta_prompt_inputs
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
    processor = PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K, prompt_attention_mask=mask, model=base)
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
    processor = PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K, prompt_attention_mask=mask, model=base,
                                   reference_prompt_ids=[render_ids(smol_tokenizer, p, None) for p in PROMPTS])
    assert generate_with(base, rows, [processor]) == expected


def test_single_unpadded_prompt_matches_the_engine(smol_tokenizer):
    base, persrm = tiny_llama(0), perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    request = GenerationRequest(PROMPTS[0], "humor", beta=3.0, top_k=4, max_new_tokens=N, reward="released")
    expected = Engine(base, smol_tokenizer, persrm).generate([request])[0].token_ids
    row = render_ids(smol_tokenizer, PROMPTS[0], "humor")
    assert generate_with(base, [row], [PADLogitsProcessor(persrm, beta=3.0, top_k=4)]) == [expected]


def test_end_ids_leave_the_end_of_turn_to_the_base_as_the_engine_does(smol_tokenizer):
    """end_ids is the engine's end_of_turn="base"; the end token is a candidate of the second step for which the
    two rules part ways (found by trying each), so the comparison is not vacuous."""
    base, persrm = tiny_llama(0), perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    engine = Engine(base, smol_tokenizer, persrm)
    request = dict(prompt=PROMPTS[0], preference=Preference.parse("Answer like a pirate"), beta=1.0, top_k=TOP_K,
                   max_new_tokens=N)
    row = render_ids(smol_tokenizer, PROMPTS[0], request["preference"].text)
    first = engine.generate([GenerationRequest(**request, end_of_turn="reward")])[0].token_ids[:1]
    for end in base(torch.tensor([row + first])).logits[0, -1].topk(TOP_K).indices.tolist():
        engine.eos_ids = {end}
        left, released = engine.generate([GenerationRequest(**request, end_of_turn="base"),
                                          GenerationRequest(**request, end_of_turn="reward")])
        if left.token_ids != released.token_ids:
            break
    else:
        pytest.fail("no candidate ends the answer differently under the two rules: the test proves nothing")
    processor = PADLogitsProcessor(persrm, beta=1.0, top_k=TOP_K, end_ids=[end])
    out = base.generate(torch.tensor([row]), logits_processor=[processor], do_sample=False, max_new_tokens=N,
                        eos_token_id=end, pad_token_id=EOS)
    assert out[0, len(row):].tolist() == left.token_ids


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


@pytest.mark.parametrize("prompts, preference, message", [
    ("Hi", "concise", "takes a non-empty list of prompts"),
    ([], "concise", "takes a non-empty list of prompts"),
    (["Hi"], "concise=0.5,friendly=0.5", "takes one preference"),
])
def test_inputs_for_your_own_generate_refuse_what_they_cannot_render(smol_tokenizer, prompts, preference, message):
    processor = PADLogitsProcessor(PersonalizedRewardModel(tiny_llama(1)))
    with pytest.raises(PersonalignError, match="^prepare " + message):
        processor.prepare(smol_tokenizer, prompts, preference)
    with pytest.raises(PersonalignError, match="^meta_prompt_inputs " + message):
        meta_prompt_inputs(smol_tokenizer, prompts, preference)


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


# ---- layouts, reuse --------------------------------------------------------------------------------------------

def test_an_adapter_on_the_generating_model_is_refused():
    base = tiny_llama(0)
    persrm = perturbed_lora(PersonalizedRewardModel(base))  # peft injects the adapter into base's own layers
    for generating in (base, persrm.backbone):
        with pytest.raises(PersonalignError, match="sits on the generating model"):
            PADLogitsProcessor(persrm, model=generating)
    with pytest.raises(PersonalignError, match="sits on the generating model"):
        PADLogitsProcessor(PersonalizedRewardModel(tiny_llama(1)), model=base)  # another PersRM, base still adapted
    with pytest.raises(PersonalignError, match="pass model="):
        PADLogitsProcessor(persrm)  # unknowable without the generating model
    PADLogitsProcessor(perturbed_lora(PersonalizedRewardModel(tiny_llama(1))), model=tiny_llama(0))  # separate: fine


def generate_inputs(base, inputs, processor):
    out = base.generate(**inputs, logits_processor=[processor], do_sample=False, max_new_tokens=N, pad_token_id=EOS)
    return [until_eos(r) for r in out[:, inputs["input_ids"].shape[1]:].tolist()]


def test_a_processor_serves_later_batches_like_a_fresh_one(models, smol_tokenizer):
    base, persrm = models
    fresh = lambda: PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K, model=base)
    reused = fresh()
    batches = [PROMPTS, PROMPTS[:1], PROMPTS[::-1], PROMPTS[1:]]
    results = [generate_inputs(base, reused.prepare(smol_tokenizer, b, "concise"), reused) for b in batches]
    for batch, got in zip(batches, results):
        processor = fresh()
        assert got == generate_inputs(base, processor.prepare(smol_tokenizer, batch, "concise"), processor)
    rows = [render_ids(smol_tokenizer, p, Preference.parse("concise").text) for p in PROMPTS[1:]]
    assert results[3] != generate_with(base, rows, []), "the PersRM never changed a choice: the test proves nothing"


def test_without_padding_a_new_generate_starts_afresh(smol_tokenizer):
    """No mask to go stale: another batch size, or other ids (even at the previous length + 1), restart the PersRM;
    the previous ids plus one token continue it."""
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    row = render_ids(smol_tokenizer, PROMPTS[1], "humor")
    scores = torch.randn(2, persrm.vocab_size)

    def fresh(*calls):  # what a new processor returns at the last of these calls
        processor = PADLogitsProcessor(persrm, top_k=TOP_K)
        return [processor(torch.tensor(c), scores[:len(c)]) for c in calls][-1]

    reused = PADLogitsProcessor(persrm, top_k=TOP_K)
    step = [row + [5]] * 2
    other = [[7] + row + [5]] * 2  # the length of a continuation of `step`, other ids
    for history in ([[row]], [[row] * 2], [[row] * 2, step], [other]):
        got = reused(torch.tensor(history[-1]), scores[:len(history[-1])])
        assert torch.equal(got, fresh(*history))
    continued = fresh([row] * 2, step, [row + [5, 5]] * 2)  # what feeding only `other`'s last token would give
    assert not torch.equal(got, continued), "the stale state would change nothing: the test proves nothing"


def test_a_mask_is_kept_for_the_same_prompts_and_refused_for_others(smol_tokenizer):
    base, persrm = tiny_llama(0), perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    processor = PADLogitsProcessor(persrm, beta=BETA, top_k=TOP_K)
    inputs = processor.prepare(smol_tokenizer, PROMPTS, "concise")
    first = generate_inputs(base, inputs, processor)
    assert generate_inputs(base, inputs, processor) == first
    other = {k: v.flip(0) for k, v in inputs.items()}  # same shape, other prompts: the old mask would be wrong
    with pytest.raises(PersonalignError, match="prepare"):
        generate_inputs(base, other, processor)
    processor.reset(prompt_attention_mask=inputs["attention_mask"][:1])
    with pytest.raises(PersonalignError, match="prompt_attention_mask has shape"):
        generate_inputs(base, inputs, processor)


@pytest.mark.parametrize("prompts, preference, message", [
    (PROMPTS, "concise=0.5,friendly=0.5", "one preference"),
    (PROMPTS[0], "concise", "list of prompts"),  # a bare string would be read as one prompt per character
    ([], "concise", "list of prompts"),
])
def test_prepare_refuses_what_it_cannot_render(smol_tokenizer, prompts, preference, message):
    processor = PADLogitsProcessor(PersonalizedRewardModel(tiny_llama(1)))
    with pytest.raises(PersonalignError, match=message):
        processor.prepare(smol_tokenizer, prompts, preference)


# ---- the front door on the real embedded model -----------------------------------------------------------------

def lora_layers(model) -> list[str]:
    return [name for name, _ in model.named_modules() if name.endswith("lora_A")]


def test_pad_logits_processor_gives_the_engines_tokens_with_the_shipped_persrm(smollm2):
    model, tokenizer = smollm2
    prompts, steps = ["How do vaccines work?", "Tell me a joke"], 8
    processor = pad_logits_processor(model, beta=1.0, top_k=10)
    assert processor.persrm.has_adapter and not lora_layers(model), "generate must stay the plain base"
    inputs = processor.prepare(tokenizer, prompts, "concise")
    out = model.generate(**inputs, logits_processor=[processor], do_sample=False, max_new_tokens=steps)
    got = [until_eos(r) for r in out[:, inputs["input_ids"].shape[1]:].tolist()]
    engine_model = copy.deepcopy(model)
    engine = Engine(engine_model, tokenizer, api.load_persrm(None, engine_model, model.name_or_path))
    requests = lambda method: [GenerationRequest(p, "concise", method=method, max_new_tokens=steps) for p in prompts]
    assert got == [r.token_ids for r in engine.generate(requests("pad"))]
    assert got != [r.token_ids for r in engine.generate(requests("prompt"))], "PAD changed nothing: proves nothing"
    with pytest.raises(PersonalignError, match="sits on the generating model"):
        pad_logits_processor(engine_model)  # the engine's model carries the shipped PersRM's adapter


def test_the_readme_logits_processor_snippet_runs(smollm2, capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "pad_logits_processor" in b]
    assert "max_new_tokens=64" in snippet
    exec(snippet.replace("max_new_tokens=64", "max_new_tokens=4"), {})
    answers = ast.literal_eval(capsys.readouterr().out)
    assert len(answers) == 2 and all(answers)


def test_pad_logits_processor_checks_end_of_turn_before_loading():
    with pytest.raises(PersonalignError, match="unknown end_of_turn"):
        pad_logits_processor(tiny_llama(0), end_of_turn="never")
