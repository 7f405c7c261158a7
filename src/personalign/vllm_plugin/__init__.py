"""PAD inside vLLM: a model class that runs the PersRM beside the base in one vLLM model, and a logits processor
that applies each request's beta and top-k (PAD_SPEC section 3).

vLLM finds both through entry points (pyproject.toml: `vllm.general_plugins` calls `register`;
`vllm.logits_processors` names `PadLogitsProcessor`), so `vllm serve` and `LLM(...)` load them in every process.
This package imports only torch, vLLM and personalign's decoding rules: it runs in vLLM's own environment
(scripts/setup-vllm.sh), whose transformers is older than the rest of personalign needs.
"""

ARCHITECTURE = "PersonalignPadLlamaForCausalLM"


def register() -> None:
    """vLLM's general plugin hook: make the PAD architecture loadable by name."""
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "personalign.vllm_plugin.model:PadLlamaForCausalLM")
