"""Preference pair data: chat-message prompts, file:line errors, column mapping, dedup, the split by prompt, the
DSP / HHH / HH converters and `personalign data convert`."""

import hashlib
import json

import pytest

from personalign.cli import main
from personalign.data.converters import DSP_PREFERENCES, SOURCES, load_source
from personalign.data.pairs import (Pair, dedupe_pairs, hh_messages, prompt_key, read_pairs_jsonl, split_pairs,
                                    write_pairs_jsonl)
from personalign.data_dir import default_data_dir
from personalign.errors import PersonalignError

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}]


def _require(relative):
    if not (default_data_dir() / relative).is_file():
        pytest.skip(f"shared data file {relative} not found under {default_data_dir()} (set PERSONALIGN_DATA)")


def _write(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _record(**changes):
    return {"preference": "concise", "prompt": "q", "chosen": "c", "rejected": "r", **changes}


def test_chat_prompts_round_trip_and_extra_keys_are_ignored(tmp_path):
    path = _write(tmp_path / "in.jsonl", _record(prompt=CHAT, id=7, source="mine", margin=0.5), "",
                  _record(prompt="plain"))
    pairs = read_pairs_jsonl(path)
    assert pairs == [Pair("concise", CHAT, "c", "r"), Pair("concise", "plain", "c", "r")]
    write_pairs_jsonl(tmp_path / "out.jsonl", pairs)
    assert read_pairs_jsonl(tmp_path / "out.jsonl") == pairs


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    (_record(chosen=None), '"chosen" must be a non-empty string'),
    ({k: v for k, v in _record().items() if k != "preference"}, 'missing "preference"'),
    (_record(rejected="  "), '"rejected" must be a non-empty string'),
    (_record(prompt=3), '"prompt" must be a non-empty string or a list of chat messages'),
    (_record(prompt=[]), '"prompt" is an empty list of messages'),
    (_record(prompt=["Hi"]), '"prompt" message 1 must be an object with "role" and "content"'),
    (_record(prompt=[{"role": "user"}]), '"prompt" message 1 must be an object with "role" and "content"'),
    (_record(prompt=[{"role": "bot", "content": "x"}, {"role": "user", "content": "Hi"}]),
     "\"prompt\" message 1 has role 'bot'"),
    (_record(prompt=[{"role": "user", "content": 5}]), '"prompt" message 1: "content" must be a string'),
    (_record(prompt=CHAT[:3]), '"prompt" must end with a non-empty user message'),
    (_record(prompt=[{"role": "user", "content": " "}]), '"prompt" must end with a non-empty user message'),
    (_record(chosen=" same", rejected="same \n"), '"chosen" and "rejected" are identical'),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "in.jsonl", _record(), "  ", line)
    with pytest.raises(PersonalignError) as err:
        read_pairs_jsonl(path)
    assert str(err.value).startswith(f"{path}:3: ") and message in str(err.value)


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_file_is_an_error(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    with pytest.raises(PersonalignError, match="no pairs") as err:
        read_pairs_jsonl(path)
    assert str(err.value) == f"{path}: no pairs (the file is empty)"


def test_columns_can_be_mapped_and_a_default_preference_filled_in(tmp_path):
    path = _write(tmp_path / "in.jsonl", {"question": "q", "good": "c", "bad": "r", "user_type": "expert"},
                  {"question": "q2", "good": "c", "bad": "r"})
    fields = {"preference": "user_type", "prompt": "question", "chosen": "good", "rejected": "bad"}
    assert read_pairs_jsonl(path, fields, preference="novice") == [Pair("expert", "q", "c", "r"),
                                                                   Pair("novice", "q2", "c", "r")]
    with pytest.raises(PersonalignError) as err:
        read_pairs_jsonl(path, fields)
    assert str(err.value) == f'{path}:2: no column "user_type" (mapped to preference)'
    with pytest.raises(PersonalignError, match='"good" \\(mapped to chosen\\) and "bad" \\(mapped to rejected\\)'):
        read_pairs_jsonl(_write(tmp_path / "same.jsonl", {"question": "q", "good": "x", "bad": "x"}), fields, "p")
    with pytest.raises(PersonalignError, match="unknown pair field 'answer'"):
        read_pairs_jsonl(path, {"answer": "good"})


def test_hh_dialogues_become_alternating_chat_messages():
    assert hh_messages("Human: Hi there") == [{"role": "user", "content": "Hi there"}]
    assert hh_messages("Human: a\n\nAssistant: b\n\nAssistant: c\n\nHuman: d\n\nAssistant:  \n\nHuman: e") == [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b\n\nc"},
        {"role": "user", "content": "d\n\ne"}]
    # HHH prompts start without a marker; a marker not at a turn boundary is part of the text
    assert hh_messages("first\n\nAssistant: ok Human: not a turn\n\nHuman: next") == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok Human: not a turn"},
        {"role": "user", "content": "next"}]


def test_prompt_key_treats_equal_prompts_alike():
    one_turn = Pair("p", [{"role": "user", "content": "Hi"}], "c", "r")
    assert prompt_key(one_turn) == prompt_key(Pair("p", "Hi", "c", "r")) == "Hi"
    padded = [dict(m, content=f" {m['content']} \n", name="x") for m in CHAT]
    assert prompt_key(Pair("p", padded, "c", "r")) == prompt_key(Pair("p", CHAT, "c", "r"))
    assert prompt_key(Pair("p", CHAT[1:], "c", "r")) != prompt_key(Pair("p", CHAT, "c", "r"))


def test_dedupe_drops_repeats_after_stripping_and_keeps_the_first_in_order():
    a, b = Pair("p", "q", "c", "r"), Pair("p", CHAT, "c", "r")
    pairs = [a, b, Pair(" p", "q ", "c\n", " r"), Pair("other", "q", "c", "r"), Pair("p", "q", "r", "c"),
             Pair("p", [dict(m, content=m["content"] + " ") for m in CHAT], "c", "r")]
    assert dedupe_pairs(pairs) == ([a, b, pairs[3], pairs[4]], 2)


def test_split_by_prompt_with_chat_prompts_is_deterministic_and_keeps_text_hashes():
    pairs = [Pair(f"pref {i % 3}", [*CHAT[:3], {"role": "user", "content": f"question {i % 30}"}], f"c{i}", "r")
             for i in range(120)] + [Pair("p", f"text {i % 30}", f"c{i}", "r") for i in range(120)]
    train, valid = split_pairs(pairs, valid_fraction=0.3, seed=5)
    assert train and valid and not {prompt_key(p) for p in train} & {prompt_key(p) for p in valid}
    assert split_pairs(pairs, valid_fraction=0.3, seed=5) == (train, valid)
    for pair in pairs[120:]:  # text prompts land where they did before chat prompts existed
        digest = hashlib.sha256(f"5\0{pair.prompt}".encode()).digest()
        assert (pair in valid) == (int.from_bytes(digest[:8], "big") / 2**64 < 0.3)


def test_dsp_domain_pairs_choose_the_users_domain():
    _require("dsp/domain_specific_preference.test.json.gz")
    from personalign.data import read_shared_json

    records = read_shared_json("dsp/domain_specific_preference.test.json.gz")
    pairs = load_source("dsp-domain")
    assert len(pairs) == 7816 and dedupe_pairs(pairs)[1] == 32
    assert {p.preference for p in pairs} == set(DSP_PREFERENCES.values())
    first = records[0]["responses"]
    academy = [p for p in pairs[:12] if p.preference == DSP_PREFERENCES["academy"]]
    assert all(p.prompt == records[0]["query"] and p.chosen == first["academy"] for p in academy)
    assert [p.rejected for p in academy] == [first[d] for d in ("business", "entertainment", "literature")]
    domain = {text: name for name, text in DSP_PREFERENCES.items()}
    responses = {r["query"]: r["responses"] for r in records}
    for p in pairs:  # chosen: the user's domain; rejected: another domain's answer, never the plain one
        answers = responses[p.prompt]
        assert p.chosen == answers[domain[p.preference]] and p.chosen.strip() != p.rejected.strip()
        assert p.rejected in [answers[d] for d in DSP_PREFERENCES if d != domain[p.preference]]


def test_hhh_pairs_parse_the_prometheus_prompts():
    _require("hhh_alignment/hhh_alignment_eval.json.gz")
    pairs = load_source("hhh")
    assert len(pairs) == 221
    counts = {pref: sum(p.preference == pref for p in pairs) for pref in {p.preference for p in pairs}}
    assert counts == {"helpfulness": 59, "honest": 61, "harmless": 58, "helpful, honest and harmless": 43}
    assert pairs[0].prompt.startswith("Can you tell me what kind of knife")
    assert pairs[0].chosen.startswith("Sorry, I'm not interested") and "###" not in pairs[0].rejected
    chats = [p.prompt for p in pairs if isinstance(p.prompt, list)]
    assert len(chats) == 41 and all(c[0]["role"] == "user" and c[-1]["role"] == "user" for c in chats)


@pytest.mark.parametrize("name, preference, count", [("hh-helpful", "helpfulness", 2339),
                                                     ("hh-harmless", "harmless", 2303)])
def test_hh_sources_give_chat_prompts(name, preference, count):
    _require("dsp/helpful.test.json.gz" if name == "hh-helpful" else "hh_rlhf/harmless-base_test.jsonl.gz")
    pairs = load_source(name)
    assert len(pairs) == count and {p.preference for p in pairs} == {preference}
    chats = [p.prompt for p in pairs if isinstance(p.prompt, list)]
    assert chats and all(c[-1]["role"] == "user" and len(c) >= 3 for c in chats)
    assert all("Human:" not in p.prompt[:7] for p in pairs if isinstance(p.prompt, str))


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(PersonalignError, match=", ".join(SOURCES)):
        load_source("nope")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_convert_writes_a_split_without_shared_prompts(capsys, tmp_path):
    rows = [{"question": f"question {i % 20}", "good": f"good {i}", "bad": f"bad {i}"} for i in range(60)]
    rows[5]["kind"] = "expert"
    path = _write(tmp_path / "mine.jsonl", *rows, rows[0])  # the last line repeats the first
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "data", "convert", "--input", str(path), "--field", "prompt=question",
                             "--field", "chosen=good", "--field", "rejected=bad", "--field", "preference=kind",
                             "--preference", "novice", "--out", str(out), "--valid-fraction", "0.3", "--seed", "1")
    assert code == 0 and err == ""
    train, valid = read_pairs_jsonl(out / "train.jsonl"), read_pairs_jsonl(out / "valid.jsonl")
    assert len(train) + len(valid) == 60 and not {p.prompt for p in train} & {p.prompt for p in valid}
    assert {p.preference for p in train + valid} == {"novice", "expert"}
    assert "1 repeated pairs dropped" in stdout and "novice" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["train.jsonl", "valid.jsonl"]


def test_data_convert_mixes_sources_and_files(capsys, tmp_path):
    _require("hhh_alignment/hhh_alignment_eval.json.gz")
    path = _write(tmp_path / "mine.jsonl", *(_record(prompt=f"q{i}") for i in range(5)))
    code, stdout, _ = _run(capsys, "data", "convert", "--source", "hhh", "--input", str(path), "--out",
                           str(tmp_path / "out"))
    assert code == 0 and "concise" in stdout and "honest" in stdout
    pairs = read_pairs_jsonl(tmp_path / "out" / "train.jsonl") + read_pairs_jsonl(tmp_path / "out" / "valid.jsonl")
    assert len(pairs) == 226


@pytest.mark.parametrize("lines, flags, message", [
    ([], [], "no pairs (the file is empty)"),
    ([_record(), {"prompt": "q", "chosen": "c", "rejected": "r"}], [], ':2: missing "preference"'),
    ([_record(chosen="same", rejected="same")], [], ":1: \"chosen\" and \"rejected\" are identical"),
    ([_record(prompt=[{"role": "assistant", "content": "hi"}])], [], ":1: \"prompt\" must end with a non-empty user"),
    ([_record()], ["--field", "answer=good"], "unknown field 'answer'"),
    ([_record()], ["--field", "prompt"], "give FIELD=COLUMN"),
    ([_record()], ["--field", "preference=user_type"], ':1: no column "user_type" (mapped to preference)'),
    ([_record()], ["--source", "hhh,nope"], "unknown --source 'nope'"),
    ([_record()], ["--valid-fraction", "1"], "--valid-fraction must be between 0 and 1"),
    ([_record()], [], "1 pairs are too few to split"),
])
def test_data_convert_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, lines, flags, message):
    path = _write(tmp_path / "mine.jsonl", *lines)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "data", "convert", "--input", str(path), *flags, "--out", str(out))
    assert code == 2 and stdout == "" and not out.exists()
    assert err.startswith("personalign: error: ") and err.count("\n") == 1 and message in err
