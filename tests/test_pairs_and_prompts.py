"""Prompt sets, user prompt files and preference pairs: parsing, errors with file:line, the split, the loaders."""

import json

import pytest

from personalign.data import shared_file
from personalign.data.pairs import Pair, load_hh_pairs, read_pairs_jsonl, split_pairs, write_pairs_jsonl
from personalign.data.prompt_sets import PromptItem, load_prompts
from personalign.data_dir import default_data_dir
from personalign.errors import PersonalignError


def _lines(tmp_path, *lines, name="in.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _require(relative):
    if not (default_data_dir() / relative).is_file():
        pytest.skip(f"shared data file {relative} not found under {default_data_dir()} (set PERSONALIGN_DATA)")


def test_user_prompt_file_ids_default_to_line_numbers_and_limit_keeps_file_order(tmp_path):
    path = _lines(tmp_path, '{"prompt": "a"}', "", '{"prompt": "b", "id": "x"}', '{"prompt": "a", "id": 7}')
    assert load_prompts(str(path)) == [PromptItem("1", "a"), PromptItem("x", "b"), PromptItem("7", "a")]
    assert load_prompts(str(path), limit=2) == [PromptItem("1", "a"), PromptItem("x", "b")]


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "ok"', "not valid JSON"),
    ('["prompt"]', "expected a JSON object"),
    ('{"id": "a"}', '"prompt" must be a non-empty string'),
    ('{"prompt": "  "}', '"prompt" must be a non-empty string'),
    ('{"prompt": "q", "id": [1]}', '"id" must be'),
    ('{"prompt": "q", "id": "first"}', "duplicate id 'first' (first used on line 1)"),
])
def test_user_prompt_file_errors_name_file_and_line(tmp_path, line, message):
    path = _lines(tmp_path, '{"prompt": "fine", "id": "first"}', line)
    with pytest.raises(PersonalignError) as err:
        load_prompts(str(path))
    assert f"{path}:2: " in str(err.value) and message in str(err.value)


def test_unknown_prompt_source_lists_the_sets():
    with pytest.raises(PersonalignError, match="koala_eval_50"):
        load_prompts("no-such-set-or-file.jsonl")


def test_missing_shared_file_says_to_set_the_data_dir(tmp_path):
    with pytest.raises(PersonalignError, match="PERSONALIGN_DATA"):
        load_prompts("koala_eval_50", data_dir=tmp_path)
    with pytest.raises(PersonalignError, match="harmless-base_test"):
        load_hh_pairs("harmless", data_dir=tmp_path)


def _pair(prompt, n=0):
    return Pair("harmless", prompt, f"good {n}", f"bad {n}")


def test_split_is_by_prompt_and_deterministic():
    pairs = [_pair(f"prompt {i % 40}", i) for i in range(200)]
    train, valid = split_pairs(pairs, valid_fraction=0.25, seed=3)
    assert not {p.prompt for p in train} & {p.prompt for p in valid}
    assert sorted(train + valid, key=pairs.index) == pairs and train and valid
    assert split_pairs(pairs, valid_fraction=0.25, seed=3) == (train, valid)
    assert split_pairs(pairs, valid_fraction=0.25, seed=4) != (train, valid)
    with pytest.raises(PersonalignError):
        split_pairs(pairs, valid_fraction=1.0)


def test_pairs_jsonl_round_trip(tmp_path):
    pairs = [_pair("Human: hi", 1), Pair("helpfulness", "Ünïcode ✓", "yes", "no"),
             Pair("concise", "Hi?", "Hello.", "Hello, and welcome to", chosen_ends=True)]
    path = tmp_path / "pairs.jsonl"
    write_pairs_jsonl(path, pairs)
    assert read_pairs_jsonl(path) == pairs
    assert [sorted(json.loads(line)) for line in path.read_text().splitlines()][1:] == [  # false flags left out
        ["chosen", "preference", "prompt", "rejected"], ["chosen", "chosen_ends", "preference", "prompt", "rejected"]]
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]  # no temporary file left behind


@pytest.mark.parametrize("record, message", [
    ({"preference": "h", "prompt": "p", "chosen": "c"}, 'missing "rejected"'),
    ({"preference": "h", "prompt": "", "chosen": "c", "rejected": "r"}, '"prompt" must be a non-empty string'),
    ({"preference": "h", "prompt": "p", "chosen": "same", "rejected": "same"}, "identical"),
    ({"preference": "h", "prompt": "p", "chosen": "c", "rejected": "r", "rejected_ends": "yes"},
     '"rejected_ends" must be true or false'),
])
def test_pairs_jsonl_errors_name_file_and_line(tmp_path, record, message):
    good = {"preference": "h", "prompt": "p", "chosen": "c", "rejected": "r"}
    path = _lines(tmp_path, json.dumps(good), json.dumps(record))
    with pytest.raises(PersonalignError) as err:
        read_pairs_jsonl(path)
    assert f"{path}:2: " in str(err.value) and message in str(err.value)


def test_writing_invalid_pairs_leaves_no_file(tmp_path):
    with pytest.raises(PersonalignError, match="identical"):
        write_pairs_jsonl(tmp_path / "p.jsonl", [Pair("h", "p", "x", "x")])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("preference, count", [("harmless", 2303), ("helpfulness", 2339)])
def test_hh_pairs_from_the_shared_data(preference, count):
    _require("hh_rlhf/harmless-base_test.jsonl.gz" if preference == "harmless" else "dsp/helpful.test.json.gz")
    pairs = load_hh_pairs(preference)
    assert len(pairs) == count
    assert all(p.preference == preference and p.chosen != p.rejected and p.chosen and p.rejected for p in pairs)
    assert all(p.prompt.startswith("Human: ") and not p.prompt.endswith("Assistant:") for p in pairs)
    first = pairs[0]
    assert "Assistant:" not in first.chosen[:20] and first.prompt.count("Human:") >= 1


def test_prompt_sets_from_the_shared_data():
    for relative in ("psoups/koala_eval_50.json", "mt_bench/question.jsonl", "hh_rlhf/harmless-base_test.jsonl.gz",
                     "amulet/HelpSteer_train.json.gz", "amulet/UltraFeedback_ultrachat.json.gz",
                     "amulet/UltraFeedback_truthful_qa.json.gz"):
        _require(relative)
    koala = load_prompts("koala_eval_50")
    assert len(koala) == 50 and koala[0].id == "0" and koala[0].prompt.startswith("List the layers")
    assert [p.id for p in load_prompts("mt_bench", limit=2)] == ["81", "82"]
    hh = load_prompts("hh_rlhf")
    assert len(hh) == 662 and all("Human:" not in p.prompt and "Assistant:" not in p.prompt for p in hh)
    short = load_prompts("helpsteer_short")
    assert 0 < len(short) < len(load_prompts("helpsteer")) and all(len(p.prompt) <= 100 for p in short)
    ultrachat_short = load_prompts("ultrachat_short")
    assert len(ultrachat_short) == 2046 and all(len(p.prompt) <= 100 for p in ultrachat_short)
    assert shared_file("psoups/koala_eval_50.json").is_file()
    for name, count in (("ultrachat", 3845), ("truthfulqa", 811)):
        prompts = load_prompts(name)
        assert len(prompts) == len({p.id for p in prompts}) == count and all(p.prompt.strip() for p in prompts)
