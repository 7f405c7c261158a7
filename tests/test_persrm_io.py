"""Saving and loading a PersRM: exact round trip (head + LoRA), atomic saves, use in the engine, api.load_persrm."""

import json
from pathlib import Path

import pytest
import torch

from personalign import api, reward_model
from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest
from personalign.errors import PersonalignError
from personalign.models import EMBEDDED_MODEL_NAME, resolve_model_source
from personalign.prompts import render_ids
from personalign.reward_model import (ADAPTER_DIR, ADAPTER_NAME, CONFIG_NAME, HEAD_NAME, PersonalizedRewardModel,
                                      load_saved, read_config)
from tiny import tiny_llama

PROMPT = "Explain how rain forms."


def perturb_head(persrm, seed=1, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        persrm.head.weight.add_(scale * torch.randn(persrm.head.weight.shape, generator=gen))
        persrm.head.bias.add_(scale * torch.randn(persrm.head.bias.shape, generator=gen))
    return persrm


def perturb_lora(persrm, seed=2, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    names = []
    with torch.no_grad():
        for name, param in persrm.backbone.named_parameters():
            if "lora_B" in name:
                param.add_(scale * torch.randn(param.shape, generator=gen))
                names.append(name)
    assert names, "no LoRA B weights found"
    return persrm


def ids(tokenizer, principle="concise"):
    return torch.tensor([render_ids(tokenizer, PROMPT, principle)])


def with_lora(base, source="tiny-base"):
    persrm = perturb_head(PersonalizedRewardModel(base, source))
    persrm.add_lora(r=4)
    return perturb_lora(persrm).eval()


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ---- round trip ------------------------------------------------------------------------------------------------

@torch.no_grad()
def test_round_trip_with_head_and_lora_is_exact(tmp_path, smol_tokenizer):
    persrm = with_lora(tiny_llama(0))
    x = ids(smol_tokenizer)
    expected = persrm(x)
    with persrm.backbone.disable_adapter():
        assert not torch.allclose(persrm(x), expected), "the LoRA adapter is a no-op: the test proves nothing"
    assert not torch.allclose(PersonalizedRewardModel(tiny_llama(0))(x), expected)

    target = tmp_path / "rm"
    persrm.save_pretrained(target)
    files = tree(target)
    assert CONFIG_NAME in files and HEAD_NAME in files
    assert any(name.startswith(f"{ADAPTER_DIR}/{ADAPTER_NAME}/") and name.endswith(".safetensors") for name in files)
    assert sum(len(b) for b in files.values()) < 200_000, "the backbone must be referenced, not copied"
    config = read_config(str(target))
    assert config["backbone"] == "tiny-base" and config["adapter"] is True
    assert config["hidden_size"] == 32 and config["vocab_size"] == 49152
    assert [p.name for p in tmp_path.iterdir()] == ["rm"], "no temporary directory left beside the save"

    loaded = load_saved(str(target), tiny_llama(0))  # a fresh copy of the same backbone weights
    assert loaded.has_adapter and not loaded.training and loaded.backbone_source == "tiny-base"
    assert torch.equal(loaded.head.weight, persrm.head.weight) and torch.equal(loaded.head.bias, persrm.head.bias)
    torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-5)


@torch.no_grad()
def test_round_trip_head_only_has_no_adapter(tmp_path, smol_tokenizer):
    base = tiny_llama(0)
    persrm = perturb_head(PersonalizedRewardModel(base, "tiny-base"))
    persrm.save_pretrained(tmp_path / "rm")
    assert not (tmp_path / "rm" / ADAPTER_DIR).exists()
    loaded = load_saved(str(tmp_path / "rm"), base)
    assert not loaded.has_adapter and loaded.causal_lm is base
    x = ids(smol_tokenizer)
    assert torch.equal(loaded(x), persrm(x))


def test_load_into_a_backbone_of_another_hidden_size_is_an_error(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    perturb_head(PersonalizedRewardModel(tiny_llama(0))).save_pretrained(tmp_path / "rm")
    other = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(PersonalignError, match="hidden size 32"):
        load_saved(str(tmp_path / "rm"), other)


# ---- atomic save -----------------------------------------------------------------------------------------------

def crash_midway(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reward_model, "save_file", crash)


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    persrm = with_lora(tiny_llama(0))
    crash_midway(monkeypatch)
    parent = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        persrm.save_pretrained(parent / "rm")
    assert list(parent.iterdir()) == []


def test_failed_save_keeps_the_older_save(tmp_path, monkeypatch, smol_tokenizer):
    base = tiny_llama(0)
    persrm = perturb_head(PersonalizedRewardModel(base, "tiny-base"))
    target = tmp_path / "rm"
    persrm.save_pretrained(target)
    before = tree(target)
    perturb_head(persrm, seed=5)
    with monkeypatch.context() as patch:
        crash_midway(patch)
        with pytest.raises(RuntimeError, match="disk full"):
            persrm.save_pretrained(target)
    assert tree(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["rm"]
    # a save that succeeds replaces the older one
    persrm.save_pretrained(target)
    assert tree(target) != before and [p.name for p in tmp_path.iterdir()] == ["rm"]
    x = ids(smol_tokenizer)
    assert torch.equal(load_saved(str(target), base)(x), persrm(x))


def test_save_failing_at_the_final_rename_keeps_the_older_save(tmp_path, monkeypatch):
    persrm = perturb_head(PersonalizedRewardModel(tiny_llama(0), "tiny-base"))
    target = tmp_path / "rm"
    persrm.save_pretrained(target)
    before = tree(target)
    perturb_head(persrm, seed=5)
    real_replace = reward_model.os.replace

    def replace(src, dst):  # moving the old save aside works; moving the new one in fails
        if Path(src).name.startswith(".rm.") and not Path(src).name.endswith(".old"):
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(reward_model.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        persrm.save_pretrained(target)
    assert tree(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["rm"]


# ---- a saved PersRM in the engine ------------------------------------------------------------------------------

def test_saved_persrm_guides_the_engine_like_the_in_memory_one(tmp_path, smol_tokenizer):
    base = tiny_llama(0)
    persrm = perturb_head(PersonalizedRewardModel(base, "tiny-base"), scale=1.0)
    persrm.save_pretrained(tmp_path / "rm")
    loaded = load_saved(str(tmp_path / "rm"), base)
    assert loaded.causal_lm is base

    def answer(rm):
        engine = Engine(base, smol_tokenizer, rm, reward_form="released")
        assert engine.shared
        request = GenerationRequest(PROMPT, "concise", method="pad", beta=5.0, max_new_tokens=12)
        return engine.generate([request])[0].token_ids

    trained = answer(loaded)
    assert trained == answer(persrm)
    assert trained != answer(PersonalizedRewardModel(base, "tiny-base")), "the saved head changed nothing"


def test_saved_lora_persrm_guides_the_engine_like_the_in_memory_one(tmp_path, smol_tokenizer):
    base_a, base_b = tiny_llama(0), tiny_llama(0)
    persrm = with_lora(base_a)
    persrm.save_pretrained(tmp_path / "rm")
    loaded = load_saved(str(tmp_path / "rm"), base_b)
    request = lambda: GenerationRequest(PROMPT, "concise", beta=5.0, max_new_tokens=12, reward="decoupled")
    in_memory = Engine(base_a, smol_tokenizer, persrm).generate([request()])[0].token_ids
    reloaded = Engine(base_b, smol_tokenizer, loaded).generate([request()])[0].token_ids
    untrained = Engine(tiny_llama(0), smol_tokenizer).generate([request()])[0].token_ids
    assert reloaded == in_memory
    assert reloaded != untrained, "the saved adapter and head changed nothing"


# ---- api.load_persrm -------------------------------------------------------------------------------------------

@pytest.fixture
def base_dir(tmp_path, smol_tokenizer) -> Path:
    """A tiny model directory with the SmolLM2 tokenizer: a base source like any other."""
    directory = tmp_path / "base"
    tiny_llama(0).save_pretrained(directory)
    smol_tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("spec", [None, api.UNTRAINED])
def test_load_persrm_untrained_shares_the_base(spec, smol_tokenizer):
    base = tiny_llama(0)
    persrm = api.load_persrm(spec, base, "tiny-base")
    assert persrm.causal_lm is base and not persrm.has_adapter and persrm.backbone_source == "tiny-base"
    x = ids(smol_tokenizer)
    with torch.no_grad():
        assert torch.equal(persrm(x), base(x).logits)


def test_load_persrm_saved_over_the_base_shares_its_weights(tmp_path, base_dir, smol_tokenizer):
    base_source = resolve_model_source(str(base_dir))
    assert base_source == str(base_dir)
    base, _ = api.load_causal_lm(base_source, device="cpu", dtype="float32")
    persrm = perturb_head(PersonalizedRewardModel(base, base_source))
    persrm.save_pretrained(tmp_path / "rm")

    loaded = api.load_persrm(str(tmp_path / "rm"), base, base_source, device="cpu", dtype="float32")
    assert loaded.causal_lm is base
    assert torch.equal(loaded.head.weight, persrm.head.weight)
    x = ids(smol_tokenizer)
    with torch.no_grad():
        assert torch.equal(loaded(x), persrm(x))

    engine = api.load_engine(str(base_dir), str(tmp_path / "rm"), device="cpu", dtype="float32")
    assert engine.shared and engine.persrm.causal_lm is engine.model
    assert torch.equal(engine.persrm.head.weight, persrm.head.weight)


def test_load_persrm_saved_over_another_backbone_loads_it_separately(tmp_path, base_dir, smol_tokenizer):
    other_dir = tmp_path / "other"
    tiny_llama(1).save_pretrained(other_dir)
    smol_tokenizer.save_pretrained(other_dir)
    other, _ = api.load_causal_lm(str(other_dir), device="cpu", dtype="float32")
    persrm = perturb_head(PersonalizedRewardModel(other, str(other_dir)))
    persrm.save_pretrained(tmp_path / "rm")

    base, _ = api.load_causal_lm(str(base_dir), device="cpu", dtype="float32")
    loaded = api.load_persrm(str(tmp_path / "rm"), base, str(base_dir), device="cpu", dtype="float32")
    assert loaded.causal_lm is not base
    x = ids(smol_tokenizer)
    with torch.no_grad():
        assert torch.equal(loaded(x), persrm(x))
    # a plain causal-LM directory is a separate backbone with an identity head
    plain = api.load_persrm(str(other_dir), base, str(base_dir), device="cpu", dtype="float32")
    assert plain.causal_lm is not base and plain.backbone_source == str(other_dir)
    with torch.no_grad():
        assert torch.equal(plain(x), other(x).logits)


# ---- read_config -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (json.dumps({"format": "something-else", "version": 1}), "not a personalign PersRM"),
    (json.dumps({"version": 1}), "not a personalign PersRM"),
    ("{not json", "cannot read PersRM config"),
    (None, "cannot read PersRM config"),
])
def test_read_config_rejects_other_directories(tmp_path, content, message):
    if content is not None:
        (tmp_path / CONFIG_NAME).write_text(content)
    with pytest.raises(PersonalignError, match=message):
        read_config(str(tmp_path))
    with pytest.raises(PersonalignError, match=message):
        load_saved(str(tmp_path), tiny_llama(0))



# ---- the PersRM shipped for the embedded model -----------------------------------------------------------------

def test_a_shipped_persrm_is_the_default_for_the_embedded_model_only(tmp_path, monkeypatch):
    monkeypatch.setattr(api, "DEFAULT_PERSRM", tmp_path / "shipped")
    embedded = resolve_model_source(None)
    assert api.default_persrm(embedded) == api.UNTRAINED  # nothing shipped: the untrained PersRM
    (tmp_path / "shipped").mkdir()
    assert api.default_persrm(embedded) == str(tmp_path / "shipped")
    assert api.default_persrm(str(tmp_path)) == api.UNTRAINED  # another base never gets it


def test_the_shipped_persrm_is_the_trained_default_and_moves_pad_off_prompting(smollm2):
    engine = api.load_engine(dtype="float32")
    assert engine.persrm.has_adapter and engine.persrm.backbone_source == EMBEDDED_MODEL_NAME
    requests = lambda method: [GenerationRequest("How do vaccines work?", p, method=method, max_new_tokens=24)
                               for p in ("concise", "expert")]
    pad, prompt = (engine.generate(requests(m)) for m in ("pad", "prompt"))
    assert [r.token_ids for r in pad] != [r.token_ids for r in prompt]  # an untrained PersRM gives prompting's
