"""Evaluation prompts: the published prompt sets by name, or a user's JSONL file.

    koala_eval_50     the 50 Koala prompts that P-SOUPS and PAD evaluate on (ids from the file)
    koala             the 180-prompt Koala test set (ids from the file)
    helpsteer         Amulet's 1236 HelpSteer prompts (id = their index)
    helpsteer_short   those of at most 100 characters (897): PAD filters its HelpSteer2 prompts the same way,
                      though this pool is HelpSteer (v1), the one Amulet ships
    ultrachat         Amulet's 3845 UltraChat prompts (UltraFeedback's ultrachat subset; id = their index)
    ultrachat_short   those of at most 100 characters (2046), as helpsteer_short
    truthfulqa        Amulet's 811 TruthfulQA prompts (UltraFeedback's truthful_qa subset; id = their index)
    hh_rlhf           HH-RLHF harmless-base test dialogues with a single human turn, as plain prompts (662,
                      660 distinct; id = the dialogue's 0-based line in the file). Multi-turn dialogues are left
                      out: their last request only makes sense after the earlier turns, and their first human
                      turn was answered differently in the data, so neither stands alone as a prompt. The
                      harmless `rm:` judge is trained on these same dialogues: do not evaluate it on them.
    alpaca_eval       the 805 AlpacaEval instructions (id = position)
    mt_bench          the first turn of the 80 MT-Bench questions (id = question_id)

Anything else is read as a path to a JSONL file, one object per line with "prompt" (a non-empty string) and an
optional "id" (string or integer; default: the line number). Nothing is deduplicated: a prompt that occurs twice
in a source is returned twice. `limit` keeps the first N in file order.
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import PersonalignError
from ..validation import json_lines
from . import read_shared_json, read_shared_jsonl

SHORT_MAX_CHARS = 100


@dataclass(frozen=True)
class PromptItem:
    """One evaluation prompt and its stable id within its source."""
    id: str
    prompt: str


def load_prompts(source: str, limit: int | None = None, data_dir=None) -> list[PromptItem]:
    """The prompts of a named set (see the module docstring) or of a JSONL file, the first `limit` of them."""
    if limit is not None and limit < 0:
        raise PersonalignError(f"limit must be >= 0, got {limit}")
    loader = _SOURCES.get(source)
    if loader is not None:
        items = loader(data_dir)
    elif Path(source).is_file():
        items = _read_user_jsonl(Path(source))
    else:
        raise PersonalignError(f"prompt source {source!r} is neither a file nor a prompt set; the sets are: "
                               f"{', '.join(_SOURCES)}")
    return items if limit is None else items[:limit]


def prompt_set_names() -> list[str]:
    """The names of the built-in prompt sets."""
    return list(_SOURCES)


def _id_prompt(records, id_key: str, prompt_key: str) -> list[PromptItem]:
    return [PromptItem(str(r[id_key]), r[prompt_key]) for r in records]


def _amulet(name: str):
    return lambda data_dir: _id_prompt(read_shared_json(f"amulet/{name}.json.gz", data_dir), "index", "question")


def _short(source):
    return lambda data_dir: [p for p in source(data_dir) if len(p.prompt) <= SHORT_MAX_CHARS]


_helpsteer = _amulet("HelpSteer_train")
_ultrachat = _amulet("UltraFeedback_ultrachat")


def _hh_rlhf(data_dir) -> list[PromptItem]:
    items = []
    for line, record in enumerate(read_shared_jsonl("hh_rlhf/harmless-base_test.jsonl.gz", data_dir)):
        context = record["chosen"][:record["chosen"].rfind("\n\nAssistant:")]
        turns = context.split("\n\nHuman:")
        if len(turns) == 2 and not turns[0].strip():  # exactly one human turn and nothing before it
            items.append(PromptItem(str(line), turns[1].strip()))
    return items


_SOURCES = {
    "koala_eval_50": lambda d: _id_prompt(read_shared_json("psoups/koala_eval_50.json", d), "id", "prompt"),
    "koala": lambda d: _id_prompt(read_shared_jsonl("koala/koala_test_set.jsonl", d), "id", "prompt"),
    "helpsteer": _helpsteer,
    "helpsteer_short": _short(_helpsteer),
    "ultrachat": _ultrachat,
    "ultrachat_short": _short(_ultrachat),
    "truthfulqa": _amulet("UltraFeedback_truthful_qa"),
    "hh_rlhf": _hh_rlhf,
    "alpaca_eval": lambda d: [PromptItem(str(i), r["instruction"]) for i, r in enumerate(
        read_shared_json("alpaca_eval/alpaca_eval_805_example_outputs.json.gz", d))],
    "mt_bench": lambda d: [PromptItem(str(r["question_id"]), r["turns"][0])
                           for r in read_shared_jsonl("mt_bench/question.jsonl", d)],
}


def _read_user_jsonl(path: Path) -> list[PromptItem]:
    items: list[PromptItem] = []
    first_line: dict[str, int] = {}
    for number, record in json_lines(path, "prompt file"):
        where = f"{path}:{number}"
        if not isinstance(record, dict):
            raise PersonalignError(f"{where}: expected a JSON object with a \"prompt\"")
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise PersonalignError(f"{where}: \"prompt\" must be a non-empty string")
        raw_id = record.get("id", number)
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            raise PersonalignError(f"{where}: \"id\" must be a non-empty string or an integer")
        item_id = str(raw_id)
        # ids name outputs and results, so two prompts may not share one
        if item_id in first_line:
            raise PersonalignError(f"{where}: duplicate id {item_id!r} (first used on line {first_line[item_id]})")
        first_line[item_id] = number
        items.append(PromptItem(item_id, prompt))
    if not items:
        raise PersonalignError(f"{path}: no prompts in the file")
    return items
