"""Offline jobs across processes (`torchrun` or `accelerate launch`, one process per device): each process decodes
its share of the jobs into a file of its own, and the first merges them, in the jobs' order, into the file one
process would have written. A killed run's shard files are read back on resume, by any number of processes."""

from pathlib import Path

from .records import read_records, repair, write_records_atomic


class Shards:
    def __init__(self, path: Path):
        """`path`: the records file every process's share ends up in."""
        self.state, self.path = process_state(), Path(path)

    @property
    def alone(self) -> bool:
        return self.state.num_processes == 1

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    def done(self) -> list[dict]:
        """The records on file, torn last lines repaired first (see `records`). Every process reads them before any
        appends: a file repaired or read while its process writes could lose a record."""
        if self.state.is_main_process:
            self._repair()
        self.state.wait_for_everyone()
        records = self.records()
        self.state.wait_for_everyone()
        return records

    def records(self) -> list[dict]:
        """The records on file, read only: the merged file's and any shard's (a killed multi-process run's)."""
        return [r for path in [self.path, *self._shard_files()] for r in read_records(path)]

    def mine(self, todo: list) -> list:
        """This process's share of `todo`, every n-th job (n = the number of processes)."""
        return todo[self.state.process_index::self.state.num_processes]

    def target(self) -> Path:
        """Where this process appends its records."""
        return self.path if self.alone else self.path.with_name(f"{self.path.name}.rank{self.state.process_index}")

    def merge(self, key: str, order: list) -> None:
        """Once every process is done: the first one writes all records (one per `key` value), ordered as `order`
        lists the keys, into `path` and removes the shard files; the others wait for it."""
        self.state.wait_for_everyone()
        if self.state.is_main_process and self._shard_files():
            self._repair()
            records = {r[key]: r for r in self.records()}
            position = {k: i for i, k in enumerate(order)}
            merged = sorted(records.values(), key=lambda r: position.get(r[key], len(position)))
            write_records_atomic(self.path, merged)
            for path in self._shard_files():
                path.unlink()
        self.state.wait_for_everyone()

    def _repair(self) -> None:
        for path in [self.path, *self._shard_files()]:
            repair(path)

    def _shard_files(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.name}.rank*"))


def process_device() -> str | None:
    """This process's own GPU when several processes share a machine's GPUs, else None (the usual choice)."""
    import torch

    state = process_state()
    if state.num_processes > 1 and torch.cuda.is_available():
        return f"cuda:{state.local_process_index}"
    return None


def process_state(cpu: bool | None = None):
    """accelerate's view of the processes; on CPUs (by default: without a GPU) it must be told to take them as CPU
    processes (gloo)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available() if cpu is None else cpu)
