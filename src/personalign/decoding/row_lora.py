"""Rows of one batch through different LoRA adapters (or none) in one forward: the S-LoRA/Punica idea, on CPU.

The adapters are those peft injected into the model (read through each LoRA layer's public `lora_A`, `lora_B` and
`scaling`). During a forward peft's own adapters are disabled, so every wrapped Linear computes W x once for all
rows; a hook on it then adds each adapter's low-rank product only to the rows that use it: gather those rows,
B(A x) * scaling, scatter-add into the output (consecutive rows, the engine's usual layout, are a view instead).
The cost beyond the base is the adapters' r-wide products over their own rows, whatever the number of adapters in
the batch.
"""

from contextlib import ExitStack, contextmanager

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
        self.saved_modules = any(isinstance(m, ModulesToSaveWrapper) for m in modules)
        # (the layer's own Linear, {adapter: (A [r, in], B [out, r], scaling)}) for each LoRA layer
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
                self.layers.append((module.get_base_layer(), weights))

    @contextmanager
    def rows(self, adapter: list[str | None]):
        """A context in which a forward of len(adapter) rows runs row i through adapter[i] (None: the bare weights)."""
        groups = {}
        for i, name in enumerate(adapter):
            if name is not None:
                groups.setdefault(name, []).append(i)
        plan = [(name, _row_index(rows, self.device)) for name, rows in groups.items()]
        with ExitStack() as stack:
            stack.enter_context(self.bare())
            for linear, weights in self.layers:
                steps = [(rows, *weights[name]) for name, rows in plan if name in weights]
                if steps:
                    stack.callback(linear.register_forward_hook(_adds(steps)).remove)
            yield

    @contextmanager
    def bare(self):
        """peft's adapters skipped for one forward: each LoRA layer's forward is, for the while, its base layer
        (through its __call__, so the row hooks still fire), set as an instance attribute. peft's disable_adapter()
        walks every module of the model (55 ms a call on SmolLM2 with two adapters, this CPU), and toggling the
        LoRA layers' enable_adapters resets every adapter weight's requires_grad (5.5 ms a forward); this is a dict
        write per layer. Merged adapters and modules_to_save wrappers are left to peft."""
        if self.saved_modules or any(layer.merged for layer in self.tuner_layers):
            with self.model.disable_adapter():
                yield
            return
        before = [layer.__dict__.get("forward") for layer in self.tuner_layers]
        for layer in self.tuner_layers:
            layer.__dict__["forward"] = layer.get_base_layer()
        try:
            yield
        finally:  # an outer context's own skip stays in place
            for layer, forward in zip(self.tuner_layers, before):
                if forward is None:
                    del layer.__dict__["forward"]
                else:
                    layer.__dict__["forward"] = forward


def _row_index(rows: list[int], device) -> slice | torch.Tensor:
    """The rows as a slice where they are consecutive (the engine's usual layout: a view, no gather or scatter),
    else as an index tensor."""
    if rows == list(range(rows[0], rows[-1] + 1)):
        return slice(rows[0], rows[-1] + 1)
    return torch.tensor(rows, device=device)


def _adds(steps):
    def hook(_module, inputs, output):
        x = inputs[0]
        for rows, a, b, scaling in steps:
            if isinstance(rows, slice):
                output[rows].add_(((x[rows].to(a.dtype) @ a.T) @ b.T).to(output.dtype), alpha=scaling)
            else:
                delta = (x.index_select(0, rows).to(a.dtype) @ a.T) @ b.T
                output.index_add_(0, rows, delta.to(output.dtype), alpha=scaling)
        return output
    return hook
