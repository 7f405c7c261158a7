"""Append-only JSON-lines files that make a run resumable: a killed run loses at most the batch in flight.

A line cut short by a kill is ignored on reading (and the file is truncated back to its last whole line before
anything is appended), so the next run redoes that one record.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the torn last line of a killed run
    return records


def repair(path: Path) -> None:
    """Drop a torn last line so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)


def append_records(path: Path, records: list[dict]) -> None:
    with open(path, "a") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_records_atomic(path: Path, records: list[dict]) -> None:
    """Replace `path` by these records as JSON lines (atomically, as `write_text_atomic`)."""
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text`: a reader sees the old file or the whole new one, and a failure leaves no
    temporary file behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's file is private (0600); a data file is for others to read as well
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_directory_atomic(target, fill: Callable[[Path], None]) -> None:
    """Make `target` a directory that `fill(tmp)` wrote: it is filled beside `target` and swapped in, the old one
    moved aside first and deleted only once the new one is in, so a crash never leaves a half-written directory."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
