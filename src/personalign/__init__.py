"""personalign: align a language model's answers with each user's preferences at decoding time (PAD, MetaAlign).

The public names load on first use (PEP 562), so that a part with few dependencies (the vLLM plugin, which runs in
vLLM's own environment without peft or TRL) imports without pulling in the rest.
"""

from importlib import import_module

_EXPORTS = {
    "load_engine": ".api", "load_persrm": ".api", "load_policy": ".api", "pad_logits_processor": ".api",
    "Engine": ".decoding.engine",
    "PADLogitsProcessor": ".decoding.logits_processor", "meta_prompt_inputs": ".decoding.logits_processor",
    "GenerationRequest": ".decoding.request", "GenerationResult": ".decoding.request",
    "PersonalignError": ".errors",
    "load_causal_lm": ".models",
    "Preference": ".preferences",
    "PersonalizedRewardModel": ".reward_model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
