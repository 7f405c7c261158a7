"""Append-only JSON-lines files that make a run resumable: a killed run loses at most the batch in flight.

A line cut short by a kill is ignored on reading (and the file is truncated back to its last whole line before
anything is appended), so the next run redoes that one record.
"""

import json
import os
import tempfile
from pathlib import Path


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
