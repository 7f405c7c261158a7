"""PersRM training on two CPU processes (torchrun, gloo; accelerate's DDP) equals one process at the same global
batch: the trainer cuts each global batch into one shard per process and DDP averages their gradients."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import require_embedded_model
from test_train_rm import write_toy_pairs

WORKER = Path(__file__).parent / "ddp_train.py"
BIN = Path(sys.executable).parent


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_train_the_same_persrm_as_one_at_the_same_global_batch(tmp_path):
    require_embedded_model()
    write_toy_pairs(tmp_path / "pairs.jsonl")
    run([sys.executable, str(WORKER), str(tmp_path), "one", "--batch-size", "4"])
    run([str(BIN / "torchrun"), "--nproc_per_node", "2", str(WORKER), str(tmp_path), "two", "--batch-size", "2"])
    for name in ("head.safetensors", "adapter/persrm/adapter_model.safetensors"):
        one, two = (load_file(tmp_path / run / "persrm" / name) for run in ("one", "two"))
        assert one.keys() == two.keys()
        assert all(torch.allclose(one[k], two[k], atol=1e-5) for k in one), name  # sums in another order only
    head = load_file(tmp_path / "one" / "persrm" / "head.safetensors")["weight"]
    assert not torch.equal(head, torch.eye(head.shape[0])), "training changed nothing"
    losses = [[r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
               if r["split"] == "train"] for run in ("one", "two")]
    assert len(losses[0]) == len(losses[1]) == 8 and losses[0][1] != losses[0][0]
    assert all(abs(a - b) < 1e-4 for a, b in zip(*losses))
