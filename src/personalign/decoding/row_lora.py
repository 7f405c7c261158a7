"""Rows of one batch through different LoRA adapters (or none) in one forward: the S-LoRA/Punica idea, on CPU.

The adapters are those peft injected into the model (read through each LoRA layer's public `lora_A`, `lora_B` and
`scaling`). During a forward peft's own LoRA computation is skipped: each LoRA layer's forward is, for the while, its
Linear's W x, computed once for all rows, followed by each adapter's low-rank product added only to the rows that
use it: gather those rows, B(A x) * scaling, scatter-add into the output (rows evenly spaced, the engine's layout,
are a strided view instead).
The cost beyond the base is the adapters' r-wide products over their own rows, whatever the number of adapters in
the batch.
"""

from contextlib import contextmanager, nullcontext

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import ModulesToSaveWrapper

from ..errors import PersonalignError


class RowLoRA:
    def __init__(self, model, adapters: tuple[str, ...]):
        """`model`: a peft model carrying the LoRA adapters `adapters` (plain LoRA on Linear layers)."""
        self.model = model
        self.device = next(model.parameters()).device
        modules = list(model.modules())
        self.tuner_layers = [m for m in modules if isinstance(m, BaseTunerLayer)]
        self.base_layers = [m.get_base_layer() for m in self.tuner_layers]  # read once: bare() runs every forward
        self.saved_modules = any(isinstance(m, ModulesToSaveWrapper) for m in modules)
        # (the LoRA layer, its Linear, {adapter: (A [r, in], B [out, r], scaling)}) for each layer carrying `adapters`
        self.layers = []
        for name, module in model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            weights = {}
            for adapter in adapters:
                if adapter in getattr(module, "lora_variant", {}):
                    raise PersonalignError(f"adapter {adapter!r} is not plain LoRA at {name} (DoRA or another "
                                           "variant): per-row decoding supports plain LoRA only")
                if adapter in module.lora_A:
                    weights[adapter] = (module.lora_A[adapter].weight, module.lora_B[adapter].weight,
                                        module.scaling[adapter])
            if weights:
                self.layers.append((module, module.get_base_layer(), weights))

    @contextmanager
    def rows(self, adapter: list[str | None]):
        """A context in which a forward of len(adapter) rows runs row i through adapter[i] (None: the bare weights)."""
        groups = {}
        for i, name in enumerate(adapter):
            if name is not None:
                groups.setdefault(name, []).append(i)
        plan = [(name, _row_index(rows, self.device)) for name, rows in groups.items()]
        forwards = {}
        for layer, linear, weights in self.layers:
            if steps := [(rows, *weights[name]) for name, rows in plan if name in weights]:
                forwards[layer] = _with_deltas(linear, steps)
        with self.bare(forwards):
            yield

    @contextmanager
    def bare(self, forwards: dict | None = None):
        """peft's adapters skipped for one forward: each LoRA layer's forward is, for the while, `forwards[layer]`
        where given, else its base layer (through its __call__, so the engine's small-row linears still apply), set
        as an instance attribute. peft's disable_adapter() walks every module of the model (55 ms a call on SmolLM2
        with two adapters, this CPU), and toggling the LoRA layers' enable_adapters resets every adapter weight's
        requires_grad (5.5 ms a forward); this is a dict write per layer. Merged adapters and modules_to_save
        wrappers need peft's own disable_adapter() around it (it unmerges and restores the original modules)."""
        forwards = forwards or {}
        needs_peft = self.saved_modules or any(layer.merged for layer in self.tuner_layers)
        before = [layer.__dict__.get("forward") for layer in self.tuner_layers]
        with self.model.disable_adapter() if needs_peft else nullcontext():
            for layer, base in zip(self.tuner_layers, self.base_layers):
                layer.__dict__["forward"] = forwards.get(layer, base)
            try:
                yield
            finally:  # an outer context's own skip stays in place
                for layer, forward in zip(self.tuner_layers, before):
                    if forward is None:
                        del layer.__dict__["forward"]
                    else:
                        layer.__dict__["forward"] = forward


def _row_index(rows: list[int], device) -> slice | torch.Tensor:
    """The rows as a slice where they are evenly spaced (the engine lays out each request's base row, then its
    PersRM rows, so one adapter's rows are every n-th: a strided view, no gather or scatter), else as an index
    tensor."""
    step = rows[1] - rows[0] if len(rows) > 1 else 1
    if step > 0 and rows == list(range(rows[0], rows[-1] + 1, step)):
        return slice(rows[0], rows[-1] + 1, step)
    return torch.tensor(rows, device=device)


def _with_deltas(linear, steps):
    """A LoRA layer's forward for one batch: the Linear over every row, plus each adapter's delta on its rows."""
    def forward(x, *args, **kwargs):
        output = linear(x, *args, **kwargs)
        for rows, a, b, scaling in steps:
            if isinstance(rows, slice):
                output[rows].add_(((x[rows].to(a.dtype) @ a.T) @ b.T).to(output.dtype), alpha=scaling)
            else:
                delta = (x.index_select(0, rows).to(a.dtype) @ a.T) @ b.T
                output.index_add_(0, rows, delta.to(output.dtype), alpha=scaling)
        return output
    return forward
