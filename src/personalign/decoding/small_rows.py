"""Linear layers on a few rows, computed as W xᵀ where that is faster: a decoding step's shape on a CPU.

`F.linear(x, W)` with a handful of rows makes MKL's sgemm pack Wᵀ first: on this project's 2-core AVX2 EPYC a
1536x576 layer took 464 µs at 2 rows and 274 µs at 1, while `W @ xᵀ` took 169 µs at 2 rows
(benchmarks/small_row_linears.py). PAD decodes 2 rows per request where the PersRM carries an adapter, so without
this every such step paid the slow path. The CPU is asked once (a short timing, as for bf16 in training) instead of
assuming: another CPU or BLAS may not pack. GPUs and bf16/fp16 weights are left alone.
"""

import functools
import time
import types
from contextlib import contextmanager

import torch
import torch.nn.functional as F

MAX_ROWS = 64  # decoding steps; from 32 rows on the two are within a few percent, so prefills keep F.linear


class SmallRowLinears:
    def __init__(self, module: torch.nn.Module):
        """`module`: the decoder whose Linear layers (LoRA weights included) a forward may run on few rows."""
        self.linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        self.forwards = [types.MethodType(_forward, linear) for linear in self.linears]  # made once, set per forward
        weight = self.linears[0].weight if self.linears else None
        # the probe times fp32 products: bf16 weights on a CPU go another way through the BLAS
        fp32_cpu = weight is not None and weight.device.type == "cpu" and weight.dtype == torch.float32
        self.enabled = fp32_cpu and transposed_product_is_faster()

    @contextmanager
    def rows(self, rows: int):
        """A context in which the Linear layers of a forward over `rows` token rows use the faster product."""
        if not self.enabled or not 1 < rows <= MAX_ROWS:
            yield
            return
        # an instance attribute (written straight into the instance dict: nn.Module's setattr is slow), so the
        # model's own class is untouched; the module's __call__ and its hooks run as before
        for linear, forward in zip(self.linears, self.forwards):
            linear.__dict__["forward"] = forward
        try:
            yield
        finally:
            for linear in self.linears:
                del linear.__dict__["forward"]


def _forward(linear: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    y = (linear.weight @ x.reshape(rows, -1).T).T.contiguous().view(*x.shape[:-1], linear.out_features)
    return y if linear.bias is None else y + linear.bias


@functools.cache
def transposed_product_is_faster() -> bool:
    """Whether `W @ xᵀ` beats `F.linear` on this CPU for a 4-row product with an MLP-sized weight (~20 ms to ask)."""
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(1536, 576, generator=generator) for _ in range(4)]  # more than one, as in a model
    x = torch.randn(4, 576, generator=generator)

    def seconds(product) -> float:
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            for w in weights:
                product(x, w)
            best = min(best, time.perf_counter() - began)
        return best

    with torch.inference_mode():
        return seconds(lambda x, w: (w @ x.T).T.contiguous()) < 0.9 * seconds(F.linear)
