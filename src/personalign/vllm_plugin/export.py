"""A model directory vLLM loads as PAD: the base model, the PersRM's weights, and a config naming the plugin's
architecture. Runs in personalign's own environment (it loads the PersRM with peft); vLLM's environment only reads
the result.

The directory holds the base as saved by transformers (`model.safetensors`, tokenizer, generation config),
`persrm.safetensors` with the PersRM head (`persrm_head.*`) and, for a PersRM with its own backbone weights (a LoRA
adapter, merged here, or another model), that backbone (`persrm_model.*`), and config.json with
`architectures: [ARCHITECTURE]` and `personalign_pad: {own_backbone, max_top_k, base, persrm}`.
"""

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..api import load_persrm
from ..errors import PersonalignError
from ..models import load_causal_lm, resolve_model_source
from ..records import write_directory_atomic
from . import ARCHITECTURE

PERSRM_FILE = "persrm.safetensors"
SUPPORTED = ("llama",)  # model types whose vLLM class the plugin extends
SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "num_key_value_heads")


def export_pad_model(out, base: str | None = None, persrm: str | None = None, max_top_k: int = 20) -> Path:
    """Write `out` (atomically) for `base` (None: the embedded model) guided by `persrm` (None: its default PersRM,
    as `load_engine` resolves it); `max_top_k`: the largest top-k a request may ask for."""
    if max_top_k < 1:
        raise PersonalignError(f"max_top_k must be at least 1, got {max_top_k}")
    base_source = resolve_model_source(base)
    model, tokenizer = load_causal_lm(base_source, device="cpu", dtype="fp32")
    if model.config.model_type not in SUPPORTED:
        raise PersonalignError(f"PAD on vLLM supports {', '.join(SUPPORTED)} models, not {model.config.model_type}")

    def fill(directory: Path) -> None:
        model.save_pretrained(directory)  # first: a PersRM adapter is put into the base model in place
        tokenizer.save_pretrained(directory)
        reward_model = load_persrm(persrm, model, base_source, device="cpu", dtype="fp32")
        tensors = {f"persrm_head.{name}": t for name, t in reward_model.head.state_dict().items()}
        own_backbone = reward_model.has_adapter or reward_model.causal_lm is not model
        if own_backbone:
            tensors |= {f"persrm_model.{name}": t for name, t in _persrm_backbone(reward_model, model).items()}
        save_file({name: t.detach().contiguous() for name, t in tensors.items()}, directory / PERSRM_FILE)
        config = copy.deepcopy(model.config)
        config.architectures = [ARCHITECTURE]
        config.personalign_pad = {"own_backbone": own_backbone, "max_top_k": max_top_k, "base": base_source,
                                  "persrm": reward_model.saved_dir or reward_model.backbone_source}
        config.save_pretrained(directory)  # replaces the one save_pretrained wrote

    write_directory_atomic(out, fill)
    return Path(out)


def exported_max_top_k(model_dir) -> int:
    """The largest top-k the PAD model in `model_dir` ranks (its model computes no more candidates)."""
    return int(json.loads((Path(model_dir) / "config.json").read_text())["personalign_pad"]["max_top_k"])


def _persrm_backbone(reward_model, base_model) -> dict[str, torch.Tensor]:
    """The decoder weights the PersRM runs on (its adapter merged into a copy), named as in the base's decoder. The
    second stack is built from the base's config, and logits come from the base's unembedding: both must fit."""
    backbone = copy.deepcopy(reward_model.backbone)
    causal_lm = backbone.merge_and_unload() if reward_model.has_adapter else backbone
    differs = [key for key in SHAPE_KEYS if getattr(causal_lm.config, key, None) != getattr(base_model.config, key)]
    if differs:
        raise PersonalignError(f"PAD on vLLM runs the PersRM's backbone with the base's shape; this one differs in "
                               f"{', '.join(differs)}")
    if not torch.equal(causal_lm.get_output_embeddings().weight, base_model.get_output_embeddings().weight):
        raise PersonalignError("this PersRM's unembedding differs from the base's: PAD on vLLM shares the base's")
    return causal_lm.get_decoder().state_dict()
