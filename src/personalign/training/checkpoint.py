"""Training state on disk: one file, replaced atomically, holding all a resumed run needs to reach the same weights
and metrics as an uninterrupted one (trainable weights, optimizer and schedule, every random generator, the position,
the metrics not yet logged)."""

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import PersonalignError

STATE_FILE = "checkpoint.pt"


def continues_run(out: Path, settings_file: str, settings: dict, resume: bool, what: str) -> bool:
    """Whether `out` holds a run that `--resume` continues. A fresh start over an existing run, and a resume with
    other settings than the run's (`settings_file`: the settings that decide its outcome), are refused."""
    path = out / settings_file
    if not path.exists():
        return False
    if not resume:
        raise PersonalignError(f"{out} already holds a {what}: pass --resume to continue it, or another --out")
    before = json.loads(path.read_text())
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    if changed:
        raise PersonalignError(f"--resume with other settings than {out} was trained with: {', '.join(changed)}")
    return True


def trains(name: str, stage: int) -> bool:
    """Whether stage `stage` trains the PersRM parameter `name`: the head always, the LoRA adapter in stage 1."""
    return name.startswith("head.") or (stage == 1 and "lora_" in name)


def set_trainable(persrm, stage: int) -> list:
    """Freeze all but what `stage` trains; returns the parameters left to train."""
    for name, param in persrm.named_parameters():
        param.requires_grad = trains(name, stage)
    return [p for p in persrm.parameters() if p.requires_grad]


def trainable_state(persrm) -> dict[str, torch.Tensor]:
    """The weights training changes: the head and the LoRA adapter (the backbone stays frozen)."""
    return {name: p.detach().cpu().clone() for name, p in persrm.named_parameters() if trains(name, 1)}


def save_state(out: Path, *, stage: int, step: int, persrm, optimizer, scheduler, running: list) -> None:
    """`running`: each process's step values since the last "train" metrics line, in rank order (the next line
    averages them)."""
    state = {"stage": stage, "step": step, "weights": trainable_state(persrm), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": _rng_state(), "running": running}
    tmp = out / f".{STATE_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_FILE)


def load_state(out: Path) -> dict | None:
    path = Path(out) / STATE_FILE
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def restore_weights(persrm, weights: dict[str, torch.Tensor]) -> None:
    params = dict(persrm.named_parameters())
    missing = set(weights) - set(params)
    if missing:
        raise RuntimeError(f"checkpoint weights not in the model: {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
