"""What the model leaves for the logits processor at each step: the base's top-k candidate ids and the PersRM's
logits there, one row per sampled request, in the order of the logits vLLM hands the processor.

The model and the processor live in the same worker process (one per tensor-parallel rank), so a module-level
slot carries them from `compute_logits` to `apply` of the same step.
"""

from dataclasses import dataclass

import torch


@dataclass
class Step:
    candidates: torch.Tensor  # [n, K_max] base top-k ids, best first
    persrm_logits: torch.Tensor  # [n, K_max] the PersRM's logits at those ids


LAST: list[Step | None] = [None]
