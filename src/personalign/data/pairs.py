"""Preference pairs (a prompt, a chosen and a rejected response) for training and checking reward models.

The HH pairs come from the shared data: `harmless` from HH-RLHF harmless-base test (2312 dialogues; DSP's
harmless.test.json holds exactly the same 2312 pairs, so it is not read again), `helpfulness` from DSP's
helpful.test.json (HH-RLHF helpful-base test, 2352 dialogues, chosen/rejected told by the scores, ties dropped).
A dialogue splits at its last "\\n\\nAssistant:": the prompt is everything before it, kept as text with its
"Human:" / "Assistant:" markers since it may hold several turns; the response is the rest. Pairs whose two
dialogues differ before that point (a response that itself continues the dialogue: 5 harmless, 9 helpful), whose
responses are empty (4 each) or whose chosen and rejected responses are identical (none) are dropped, which leaves
2303 harmless and 2339 helpfulness pairs.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PersonalignError
from . import read_shared_json, read_shared_jsonl

PREFERENCES = ("helpfulness", "harmless")
FIELDS = ("preference", "prompt", "chosen", "rejected")
_ASSISTANT = "\n\nAssistant:"


@dataclass(frozen=True)
class Pair:
    """One comparison: under `preference`, `chosen` is a better answer to `prompt` than `rejected`."""
    preference: str
    prompt: str
    chosen: str
    rejected: str


def load_hh_pairs(preference: str, data_dir=None) -> list[Pair]:
    """The HH-RLHF test pairs for "helpfulness" or "harmless", in file order (see the module docstring)."""
    if preference == "harmless":
        records = read_shared_jsonl("hh_rlhf/harmless-base_test.jsonl.gz", data_dir)
        dialogues = [(r["chosen"], r["rejected"]) for r in records]
    elif preference == "helpfulness":
        records = read_shared_json("dsp/helpful.test.json.gz", data_dir)
        dialogues = [(a, b) if s_a > s_b else (b, a)
                     for (a, b), (s_a, s_b) in ((r["text"], r["score"]) for r in records) if s_a != s_b]
    else:
        raise PersonalignError(f"no HH pairs for preference {preference!r}; there are: {', '.join(PREFERENCES)}")
    pairs = (_dialogue_pair(preference, chosen, rejected) for chosen, rejected in dialogues)
    return [pair for pair in pairs if pair is not None]


def _dialogue_pair(preference: str, chosen: str, rejected: str) -> Pair | None:
    cut_c, cut_r = chosen.rfind(_ASSISTANT), rejected.rfind(_ASSISTANT)
    if cut_c < 0 or chosen[:cut_c] != rejected[:cut_r]:
        return None
    pair = Pair(preference, chosen[:cut_c].strip(), chosen[cut_c + len(_ASSISTANT):].strip(),
                rejected[cut_r + len(_ASSISTANT):].strip())
    return pair if _problem(asdict(pair)) is None else None


def split_pairs(pairs: list[Pair], valid_fraction: float = 0.2, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train, valid), split by prompt: every pair of a prompt goes to the same side, chosen by a hash of the
    prompt text and the seed, so the split is the same on every machine and no prompt is on both sides."""
    if not 0.0 < valid_fraction < 1.0:
        raise PersonalignError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    train, valid = [], []
    for pair in pairs:
        digest = hashlib.sha256(f"{seed}\0{pair.prompt}".encode()).digest()
        (valid if int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction else train).append(pair)
    return train, valid


def read_pairs_jsonl(path) -> list[Pair]:
    """Pairs from a JSONL file, one {"preference", "prompt", "chosen", "rejected"} object per line;
    a mistake raises PersonalignError as `FILE:LINE: message`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PersonalignError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise PersonalignError(f"{path}: not UTF-8 text ({e.reason})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PersonalignError(f"{path}:{number}: not valid JSON ({e.msg})") from None
        problem = _problem(record)
        if problem:
            raise PersonalignError(f"{path}:{number}: {problem}")
        pairs.append(Pair(*(record[field] for field in FIELDS)))
    return pairs


def write_pairs_jsonl(path, pairs: list[Pair]) -> None:
    """Write pairs as JSONL, atomically: a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    for index, pair in enumerate(pairs):
        problem = _problem(asdict(pair))
        if problem:
            raise PersonalignError(f"pair {index}: {problem}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for pair in pairs:
                f.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _problem(record) -> str | None:
    """What is wrong with one pair record, or None."""
    if not isinstance(record, dict):
        return "expected a JSON object with " + ", ".join(f'"{f}"' for f in FIELDS)
    for field in FIELDS:
        if field not in record:
            return f'missing "{field}"'
        if not isinstance(record[field], str) or not record[field].strip():
            return f'"{field}" must be a non-empty string'
    if record["chosen"] == record["rejected"]:
        return '"chosen" and "rejected" are identical'
    return None
