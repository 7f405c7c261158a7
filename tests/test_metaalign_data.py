"""MetaAlign's data: labels flip with the meta-prompt, Priority pairs obey System Info by the rule's own check,
held-out preferences never reach training, prompts never straddle the split; the command writes all or nothing."""

import gzip
import json

import pytest

from personalign.cli import main
from personalign.data import metaalign
from personalign.data.metaalign import MetaPair, build, read_meta_pairs, sft_examples
from personalign.data.pairs import prompt_key
from personalign.data.priority import obeys
from personalign.data_dir import default_data_dir
from personalign.errors import PersonalignError

STYLES = {
    "academy": "Photosynthesis is the biochemical process whereby chlorophyll-bearing organisms convert light "
               "energy into chemical energy, as documented extensively in the plant physiology literature. " * 2,
    "business": "Bottom line: plants turn sunlight into sugar. That is their revenue model, and it scales.",
    "entertainment": "Plants are basically solar-powered snack factories! Sunlight in, sugar out, party on!",
    "literature": "- Light falls like a hymn on the leaf\n- and the leaf, patient, weaves it into sweetness.",
    "normal": "Photosynthesis is how plants use light, water and carbon dioxide to make sugar and oxygen.",
}


@pytest.fixture
def data_dir(tmp_path):
    records = [{"query": f"Question {i}: how does photosynthesis work?",
                "responses": {k: f"{v} ({i})" for k, v in STYLES.items()}} for i in range(12)]
    (tmp_path / "dsp").mkdir()
    with gzip.open(tmp_path / "dsp" / "domain_specific_preference.test.json.gz", "wt") as f:
        json.dump(records, f)
    return tmp_path


def test_every_pair_appears_in_both_orders_under_opposite_preferences(data_dir):
    pairs = [p for group in build(("dsp",), data_dir=data_dir).values() for p in group if p.subset != "priority"]
    by_answers = {}
    for p in pairs:
        by_answers.setdefault((prompt_key(p), p.chosen, p.rejected), set()).add(p.preference)
    for (prompt, chosen, rejected), preferences in by_answers.items():
        flipped = by_answers.get((prompt, rejected, chosen))
        assert flipped, f"{chosen[:30]!r} > {rejected[:30]!r} never flips"
        assert not preferences & flipped  # the opposite order under other preferences only
    assert {p.preference for p in pairs} == {"dsp:academy", "dsp:business", "dsp:entertainment", "dsp:literature",
                                             "consensus"}
    assert {p.explicit for p in pairs if p.preference == "dsp:literature"} == {True, False}
    assert {p.user_info for p in pairs if not p.explicit} <= {u for us in metaalign.PERSONAS.values() for u in us}


def test_priority_pairs_obey_system_info_by_the_rules_own_check(data_dir):
    pairs = [p for group in build(("dsp",), data_dir=data_dir).values() for p in group if p.subset == "priority"]
    assert {p.rule for p in pairs} == {"word-limit", "no-lists", "formal"}
    for p in pairs:
        assert obeys(p.rule, p.params, p.chosen) and not obeys(p.rule, p.params, p.rejected)
        assert p.system_info.startswith("You are an AI assistant. ") and p.user_info  # the user asks otherwise
    limit = next(p for p in pairs if p.rule == "word-limit")
    assert f"under {limit.params['max_words']} words" in limit.system_info


def test_held_out_preferences_never_reach_training_and_prompts_stay_on_one_side(data_dir):
    groups = build(("dsp",), hold_out=("dsp:literature",), valid_fraction=0.25, data_dir=data_dir)
    assert groups["unseen"] and {p.preference for p in groups["unseen"]} == {"dsp:literature"}
    assert {p.explicit for p in groups["unseen"]} == {True, False}  # every phrasing, explicit and implied
    trained = groups["train"] + groups["valid"]
    assert all(p.preference != "dsp:literature" for p in trained)
    assert not {prompt_key(p) for p in groups["train"]} & {prompt_key(p) for p in groups["valid"]}
    assert groups == build(("dsp",), hold_out=("dsp:literature",), valid_fraction=0.25, data_dir=data_dir)


def test_the_command_writes_every_file_or_none(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "metaalign", "--out", str(out), "--sources", "dsp", "--data-dir", str(data_dir),
                 "--hold-out", "priority:formal"]) == 0
    printed = capsys.readouterr().out
    assert "distinct meta-prompts" in printed and "SFT examples:" in printed
    train = read_meta_pairs(out / "train.jsonl")
    assert train and all(p.preference != "priority:formal" for p in train)
    assert json.loads((out / "stats.json").read_text())["pairs"]["unseen"] == len(read_meta_pairs(out / "unseen.jsonl"))
    sft = [json.loads(line) for line in (out / "sft_train.jsonl").read_text().splitlines()]
    assert len({(e["user_info"], e["prompt"], e["response"]) for e in sft}) == len(sft)
    for argv, message in ((["--sources", "dsp,nope"], "unknown source 'nope'"),
                          (["--sources", "dsp", "--hold-out", "dsp:poetry"], "names preferences the data does not have: dsp:poetry")):
        fresh = tmp_path / "fresh"
        assert main(["data", "metaalign", "--out", str(fresh), "--data-dir", str(data_dir), *argv]) == 2
        assert message in capsys.readouterr().err and not fresh.exists()


def test_distinct_sft_targets_leave_out_an_answer_chosen_under_two_preferences():
    """The long answer is chosen under informative and under unfriendly: SFT on it teaches nothing about which the
    User Info asks for, so `distinct` leaves it out; the short one, chosen under two phrasings of concise and under a
    word-limit System Info (another context), stays."""
    ai = "You are an AI assistant."
    pairs = [MetaPair("psoups:informative", ai, "Give me every detail.", "Q?", "LONG", "SHORT", "diverse", True),
             MetaPair("psoups:unfriendly", ai, "Be blunt.", "Q?", "LONG", "CHEERY", "diverse", True),
             MetaPair("psoups:concise", ai, "Be brief.", "Q?", "SHORT", "LONG", "diverse", True),
             MetaPair("psoups:concise", ai, "I'm busy.", "Q?", "SHORT", "LONG", "diverse", False),
             MetaPair("priority:word-limit", "Answer in at most 20 words.", "Write at length.", "Q?", "SHORT", "LONG",
                      "priority", True)]
    assert len(sft_examples(pairs)) == 5
    kept = [(e["preference"], e["response"]) for e in sft_examples(pairs, distinct=True)]
    assert kept == [("psoups:concise", "SHORT"), ("psoups:concise", "SHORT"), ("priority:word-limit", "SHORT")]


@pytest.mark.parametrize("line, message", [
    ('{"preference": "x", "prompt": "p", "chosen": "a", "rejected": "b", "subset": "diverse", "explicit": true, '
     '"system_info": "", "user_info": "u"}', "system_info is empty"),
    ('{"preference": "x", "prompt": "p", "chosen": "a", "rejected": "b", "subset": "diverse", "explicit": true, '
     '"system_info": "s", "user_info": "u", "tier3": "?"}', "unknown field 'tier3'"),
    ('{"preference": "x", "prompt": "p", "chosen": "a", "rejected": "b", "subset": "odd", "explicit": true, '
     '"system_info": "s", "user_info": "u"}', "subset must be one of"),
    ('{"preference": "x", "prompt": "p", "chosen": "a", "rejected": "a", "subset": "diverse", "explicit": true, '
     '"system_info": "s", "user_info": "u"}', "identical"),
])
def test_pair_file_mistakes_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    good = ('{"preference": "x", "prompt": "p", "chosen": "a", "rejected": "b", "subset": "diverse", '
            '"explicit": false, "system_info": "s", "user_info": "u"}')
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(PersonalignError, match=f"{path}:2: .*{message}"):
        read_meta_pairs(path)


def test_on_the_shared_data_every_subset_has_pairs():
    if not (default_data_dir() / "dsp" / "domain_specific_preference.test.json.gz").is_file():
        pytest.skip("the shared data is not here (../shared/data or $PERSONALIGN_DATA)")
    groups = build(metaalign.SHARED_SOURCES)
    assert {p.subset for p in groups["train"]} == set(metaalign.SUBSETS)
    priority_valid = [p for p in groups["valid"] if p.subset == "priority"]
    assert len(priority_valid) >= 100  # the held-out conflicts the Priority measurement needs
    assert all(obeys(p.rule, p.params, p.chosen) and not obeys(p.rule, p.params, p.rejected) for p in priority_valid)
