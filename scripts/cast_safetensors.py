"""Cast a safetensors file's floating-point tensors in place: float16 to carry the MiniLM to a GPU machine in half
the bytes (scripts/pack_for_gpu.sh), float32 to restore it there (scripts/unpack_on_gpu.sh).

    python scripts/cast_safetensors.py FILE float16|float32
"""

import sys

import torch
from safetensors.torch import load_file, save_file

path, dtype = sys.argv[1], getattr(torch, sys.argv[2])
save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(path).items()}, path,
          metadata={"format": "pt"})
