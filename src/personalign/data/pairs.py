"""Preference pairs (a prompt, a chosen and a rejected response) for training and checking reward models.

The HH pairs come from the shared data: `harmless` from HH-RLHF harmless-base test (2312 dialogues; DSP's
harmless.test.json holds exactly the same 2312 pairs, so it is not read again), `helpfulness` from DSP's
helpful.test.json (HH-RLHF helpful-base test, 2352 dialogues, chosen/rejected told by the scores, ties dropped).
A dialogue splits at its last "\\n\\nAssistant:": the prompt is everything before it, kept as text with its
"Human:" / "Assistant:" markers since it may hold several turns; the response is the rest. Pairs whose two
dialogues differ before that point (a response that itself continues the dialogue: 5 harmless, 9 helpful), whose
responses are empty (4 each) or whose chosen and rejected responses are identical (none) are dropped, which leaves
2303 harmless and 2339 helpfulness pairs. `hh_messages` turns such a prompt into chat messages.

A pair file holds one JSON object per line: {"preference", "prompt", "chosen", "rejected"}, other keys ignored
but two optional booleans, "chosen_ends" and "rejected_ends": true where that answer is whole, ended by the model's
end of turn (a rollout that stopped by itself), so a reward model scores the end of turn as its last token; absent
or false where it was cut at a token limit or where nobody knows (the HH and DSP answers).
The prompt is a non-empty string or chat messages [{"role": "user"|"assistant"|"system", "content": str}, ...]
ending with a non-empty user turn (as `prompts.as_messages` reads them).
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PersonalignError
from ..records import write_records_atomic
from ..validation import parse_json_lines
from . import read_shared_json, read_shared_jsonl

PREFERENCES = ("helpfulness", "harmless")
FIELDS = ("preference", "prompt", "chosen", "rejected")
END_FIELDS = ("chosen_ends", "rejected_ends")
_ASSISTANT = "\n\nAssistant:"
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
ROLES = ("user", "assistant", "system")


@dataclass(frozen=True)
class Pair:
    """One comparison: under `preference`, `chosen` is a better answer to `prompt` than `rejected`."""
    preference: str
    prompt: str | list[dict]  # text, or chat messages ending with a user turn
    chosen: str
    rejected: str
    chosen_ends: bool = False  # the answer ended with the model's end of turn (see the module docstring)
    rejected_ends: bool = False


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


def hh_messages(text: str) -> list[dict]:
    """An HH-style dialogue ("Human: ...\\n\\nAssistant: ...\\n\\nHuman: ...") as chat messages. Text before the first
    marker is a user turn (HHH prompts start so); empty turns are dropped and consecutive turns of one role joined,
    since many chat templates insist that user and assistant alternate (10 HH prompts repeat a role)."""
    parts = _HH_TURN.split(text)
    messages = []
    for speaker, content in [("Human", parts[0]), *zip(parts[1::2], parts[2::2])]:
        role, content = ("user" if speaker == "Human" else "assistant"), content.strip()
        if messages and content and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        elif content:
            messages.append({"role": role, "content": content})
    return messages


def prompt_key(pair: Pair) -> str:
    """The pair's prompt as one string, equal for equal prompts (dedup and the split compare these): a text prompt
    is its text, as is a chat prompt of one user turn; a longer chat prompt is the JSON of its [role, content]
    turns with the contents stripped (other message keys do not make a prompt different)."""
    prompt = pair.prompt
    if isinstance(prompt, list) and len(prompt) == 1 and prompt[0]["role"] == "user":
        prompt = prompt[0]["content"]
    if isinstance(prompt, str):
        return prompt  # unstripped, so text prompts split exactly as before chat prompts existed
    return json.dumps([[m["role"], m["content"].strip()] for m in prompt], ensure_ascii=False)


def dedupe_pairs(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """(the pairs without repeats, how many repeats were dropped): a repeat has the preference, prompt, chosen and
    rejected of an earlier pair, compared after stripping whitespace; the first stays, in the original order."""
    seen, kept = set(), []
    for pair in pairs:
        key = (pair.preference.strip(), prompt_key(pair).strip(), pair.chosen.strip(), pair.rejected.strip())
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept, len(pairs) - len(kept)


def split_pairs(pairs: list[Pair], valid_fraction: float = 0.2, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train, valid), split by prompt: every pair of a prompt goes to the same side, chosen by a hash of the
    prompt (`prompt_key`) and the seed, so the split is the same on every machine and no prompt is on both sides."""
    if not 0.0 < valid_fraction < 1.0:
        raise PersonalignError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    train, valid = [], []
    for pair in pairs:
        digest = hashlib.sha256(f"{seed}\0{prompt_key(pair)}".encode()).digest()
        (valid if int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction else train).append(pair)
    return train, valid


def read_pairs_jsonl(path, fields: dict[str, str] | None = None, preference: str | None = None) -> list[Pair]:
    """Pairs from a JSONL file (see the module docstring); a mistake raises PersonalignError as `FILE:LINE: message`.
    `fields` maps pair fields to the file's own column names, e.g. {"preference": "user_type", "prompt": "question"};
    `preference` is the preference of the lines that have no preference column."""
    unknown = sorted(set(fields or {}) - set(FIELDS))
    if unknown:
        raise PersonalignError(f"unknown pair field {unknown[0]!r}; the fields are: {', '.join(FIELDS)}")
    columns = {field: field for field in FIELDS} | (fields or {})
    path = Path(path)

    def parse(record) -> Pair:
        if preference is not None and isinstance(record, dict):
            record.setdefault(columns["preference"], preference)
        problem = _problem(record, columns)
        if problem:
            raise PersonalignError(problem)
        return Pair(*(record[columns[field]] for field in FIELDS), *(record.get(field, False) for field in END_FIELDS))

    return parse_json_lines(path, "pair file", parse, "no pairs (the file is empty)")


def write_pairs_jsonl(path, pairs: list[Pair]) -> None:
    """Write pairs as JSONL, atomically: a reader sees the old file or the whole new one, never a part."""
    records = [{k: v for k, v in asdict(pair).items() if k not in END_FIELDS or v} for pair in pairs]
    for index, record in enumerate(records):
        problem = _problem(record)
        if problem:
            raise PersonalignError(f"pair {index}: {problem}")
    write_records_atomic(Path(path), records)


def _problem(record, columns: dict[str, str] | None = None) -> str | None:
    """What is wrong with one pair record, or None; `columns` names the record's key for each field."""
    columns = columns or {field: field for field in FIELDS}

    def name(field):
        return f'"{field}"' if columns[field] == field else f'"{columns[field]}" (mapped to {field})'

    if not isinstance(record, dict):
        return "expected a JSON object with " + ", ".join(name(field) for field in FIELDS)
    for field in FIELDS:
        if columns[field] not in record:
            return f'missing "{field}"' if columns[field] == field else f"no column {name(field)}"
        value = record[columns[field]]
        if field == "prompt" and isinstance(value, list):
            problem = _messages_problem(value)
            if problem:
                return f"{name(field)} {problem}"
        elif not isinstance(value, str) or not value.strip():
            chat = " or a list of chat messages" if field == "prompt" else ""
            return f"{name(field)} must be a non-empty string{chat}"
    for field in END_FIELDS:
        if not isinstance(record.get(field, False), bool):
            return f'"{field}" must be true or false'
    if record[columns["chosen"]].strip() == record[columns["rejected"]].strip():
        return f'{name("chosen")} and {name("rejected")} are identical'
    return None


def _messages_problem(messages: list) -> str | None:
    """What is wrong with a chat prompt, or None: the rules of `prompts.as_messages`, with known roles and text."""
    if not messages:
        return "is an empty list of messages"
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return f'message {number} must be an object with "role" and "content"'
        if message["role"] not in ROLES:
            return f"message {number} has role {message['role']!r}; the roles are: {', '.join(ROLES)}"
        if not isinstance(message["content"], str):
            return f'message {number}: "content" must be a string'
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        return "must end with a non-empty user message"
    return None
