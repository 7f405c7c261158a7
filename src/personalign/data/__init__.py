"""Prompt sets and preference pairs read from the shared data directory (see data_dir.py)."""

import gzip
import json
from pathlib import Path

from ..data_dir import default_data_dir
from ..errors import PersonalignError


def shared_file(relative: str, data_dir=None) -> Path:
    """The path of `relative` inside the data directory; a clear error when it is not there."""
    path = Path(data_dir if data_dir is not None else default_data_dir()) / relative
    if not path.is_file():
        raise PersonalignError(f"data file {path} not found: set PERSONALIGN_DATA (or pass --data-dir) to the "
                               "directory holding the shared data sets")
    return path


def read_shared_json(relative: str, data_dir=None):
    """A shared JSON file (gzip-compressed when it ends in .gz), parsed."""
    with _open_text(shared_file(relative, data_dir)) as f:
        return json.load(f)


def read_shared_jsonl(relative: str, data_dir=None) -> list:
    """A shared JSON-lines file (gzip-compressed when it ends in .gz), one parsed object per non-blank line."""
    with _open_text(shared_file(relative, data_dir)) as f:
        return [json.loads(line) for line in f if line.strip()]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")
