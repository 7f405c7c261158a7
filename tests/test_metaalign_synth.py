"""MetaAlign pairs from a synthesis run: each P-SOUPS pair flips under its axis' opposite where the judge agrees, a
degenerate answer is never chosen, a share of the free-text preferences is held out, the per-preference cap
keeps both sides of a flip, and answers cut off at the token limit say so."""

import json

import pytest

from personalign.catalog import OPPOSITE
from personalign.cli import main
from personalign.data.metaalign import build, read_meta_pairs, sft_examples
from personalign.data.metaalign_synth import PSOUPS_PERSONAS, free_text_id, synth_pairs
from personalign.data.pairs import prompt_key
from personalign.evaluation.judges.offline import OfflineJudge

SHORT = "Water boils at 100 degrees."
LONG = ("Water boils at 100 degrees Celsius at sea level, because its vapour pressure then equals the pressure of "
        "the atmosphere above it; higher up, the air is thinner and it boils at a lower temperature.")
LOOP = "Water boils boils boils. " + "boils boils boils boils " * 12
FREE = [f"I want answers that mention {topic}." for topic in ("history", "cooking", "sports", "music", "travel")]


def pair(prompt_id, preference, chosen, rejected, judge="offline"):
    return dict(preference=preference, prompt=f"Question {prompt_id}?", chosen=chosen, rejected=rejected,
                source="synth", judge=judge, margin=2.0, prompt_id=str(prompt_id), chosen_under="none",
                rejected_under="none")


@pytest.fixture
def synth_dir(tmp_path):
    records = []
    for i in range(10):
        records += [pair(i, "concise", f"{SHORT} ({i})", f"{LONG} ({i})"),
                    pair(i, "expert", f"{LONG} ({i})", f"{SHORT} ({i})"),
                    pair(i, "friendly", f"What a lovely question, friend! {SHORT}", f"{LOOP} ({i})"),
                    pair(i, "informative", f"{LONG} ({i})", "Yes."),
                    *[pair(i, text, f"{LONG} {text} ({i})", f"{SHORT} ({i})", judge="relevance") for text in FREE]]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def everything(groups):
    return [p for group in groups.values() for p in group]


def test_pairs_flip_under_the_axis_opposite_only_where_the_judge_agrees(synth_dir):
    pairs = everything(build(("synth",), synth=(synth_dir,), judge=OfflineJudge()))
    under = {}
    for p in pairs:
        under.setdefault((prompt_key(p), p.chosen, p.rejected), set()).add(p.preference)
    concise = next(p for p in pairs if p.preference == "psoups:concise")
    assert under[(prompt_key(concise), concise.rejected, concise.chosen)] >= {"psoups:informative"}
    expert = next(p for p in pairs if p.preference == "psoups:expert")
    assert "psoups:elementary" in under[(prompt_key(expert), expert.rejected, expert.chosen)]
    # the looping answer is never chosen: friendly's pair does not flip to unfriendly
    assert not any("boils boils boils" in p.chosen for p in pairs)
    assert "psoups:unfriendly" not in {p.preference for p in pairs}
    for p in pairs:
        if p.preference.startswith("psoups:"):
            dim = p.preference.split(":")[1]
            assert p.explicit or p.user_info in PSOUPS_PERSONAS[dim]
            assert OPPOSITE[OPPOSITE[dim]] == dim



def test_a_rejected_answer_synth_says_may_not_be_chosen_does_not_flip(tmp_path):
    """The on-question check's verdict on a rejected answer travels in the pair (`rejected_may_be_chosen`): a
    judge that agrees with the flip does not outweigh it."""
    records = [dict(pair(i, "concise", f"{SHORT} ({i})", f"{LONG} ({i})"), rejected_may_be_chosen=i % 2 == 0)
               for i in range(10)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    flipped = [p for p in everything(build(("synth",), synth=(tmp_path,), judge=OfflineJudge()))
               if p.preference == "psoups:informative"]
    assert flipped and all(int(p.chosen.rsplit("(", 1)[1].rstrip(")")) % 2 == 0 for p in flipped)


def test_a_share_of_free_text_is_held_out_in_every_prompt(synth_dir):
    groups = build(("synth",), synth=(synth_dir,), judge=OfflineJudge(), hold_out_free_text=0.2)
    held = {p.preference for p in groups["unseen"]}
    assert len(held) == 1 and held < {free_text_id(t) for t in FREE}
    assert not held & {p.preference for p in groups["train"] + groups["valid"]}
    assert len(groups["unseen"]) == 10  # all ten prompts of the held-out text


def test_the_cap_keeps_the_same_prompts_for_every_preference(synth_dir):
    groups = build(("synth",), synth=(synth_dir,), judge=OfflineJudge(), max_per_preference=6, valid_fraction=0.5)
    pairs = everything(groups)
    counts = {}
    for p in pairs:
        counts[p.preference] = counts.get(p.preference, 0) + 1
    assert max(counts.values()) <= 6
    prompts = lambda name: {prompt_key(p) for p in pairs if p.preference == name}
    assert prompts("psoups:concise") == prompts("psoups:informative")


def test_the_command_reads_a_synth_run_and_refuses_a_missing_one(synth_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["data", "metaalign", "--out", str(out), "--sources", "synth", "--synth", str(synth_dir)]) == 0
    assert "free-text preferences" in capsys.readouterr().out
    assert {p.preference for p in read_meta_pairs(out / "train.jsonl")} >= {"psoups:concise", "psoups:informative"}
    for argv, message in ((["--sources", "synth", "--synth", str(tmp_path / "nothing")], "no pairs.jsonl"),
                          (["--sources", "synth"], "go together"),
                          (["--sources", "synth", "--synth", str(synth_dir), "--max-per-preference", "0"],
                           "max_per_preference must be >= 1")):
        fresh = tmp_path / "fresh"
        assert main(["data", "metaalign", "--out", str(fresh), *argv]) == 2
        assert message in capsys.readouterr().err and not fresh.exists()


def test_answers_cut_at_the_token_limit_are_marked_on_both_sides_of_a_flip(tmp_path):
    record = dict(pair(0, "concise", SHORT, LONG), chosen_under="concise", rejected_under="informative")
    (tmp_path / "pairs.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "rollouts.jsonl").write_text("".join(
        json.dumps({"id": f"0\t{under}", "finish_reason": reason}) + "\n"
        for under, reason in (("concise", "eos"), ("informative", "length"))))
    pairs = synth_pairs(tmp_path, OfflineJudge())
    concise = [p for p in pairs if p.preference == "psoups:concise"]
    informative = [p for p in pairs if p.preference == "psoups:informative"]
    assert concise and informative  # the long answer flips to informative's chosen
    assert all(p.chosen_truncated is None and p.rejected_truncated for p in concise)
    assert all(p.chosen_truncated and p.rejected_truncated is None for p in informative)
    examples = {e["preference"]: e for e in sft_examples(pairs)}
    assert examples["psoups:informative"]["truncated"] is True and "truncated" not in examples["psoups:concise"]


def test_with_several_samples_the_pair_names_which_rollout_was_cut(tmp_path):
    record = dict(pair(0, "concise", SHORT, LONG), chosen_under="concise", rejected_under="informative",
                  chosen_id="0\tconcise\t#1", rejected_id="0\tinformative")
    (tmp_path / "pairs.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "rollouts.jsonl").write_text("".join(
        json.dumps({"id": rollout, "finish_reason": reason}) + "\n"
        for rollout, reason in (("0\tconcise", "length"), ("0\tconcise\t#1", "eos"), ("0\tinformative", "length"))))
    concise = [p for p in synth_pairs(tmp_path, OfflineJudge()) if p.preference == "psoups:concise"]
    assert concise and all(p.chosen_truncated is None and p.rejected_truncated for p in concise)


def test_twins_reject_a_loop_or_another_prompts_answer_under_their_pairs_meta_prompts_and_never_flip(synth_dir):
    rows = [json.loads(line) for line in (synth_dir / "pairs.jsonl").read_text().splitlines()]
    concise = [r for r in rows if r["preference"] == "concise"]
    loop = [dict(r, rejected=f"{SHORT} boils boils boils boils boils", judge="loop", rejected_under="loop",
                 rejected_id=None) for r in concise[:3]]
    offtopic = [dict(concise[3], rejected=concise[4]["chosen"], judge="offtopic", rejected_under="offtopic",
                     rejected_id=None)]
    (synth_dir / "loop_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in loop))
    (synth_dir / "offtopic_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in offtopic))
    plain = everything(build(("synth",), synth=(synth_dir,), judge=OfflineJudge()))
    guarded = everything(build(("synth",), synth=(synth_dir,), judge=OfflineJudge(), twins=True))
    added = set(guarded) - set(plain)
    assert len(added) == 2 * (len(loop) + len(offtopic))  # each stated and implied
    assert {p.rejected for p in added} == {loop[0]["rejected"], offtopic[0]["rejected"]}
    assert {p.preference for p in added} == {"psoups:concise"}  # never flipped to informative
    own = {(prompt_key(p), p.user_info) for p in plain if p.preference == "psoups:concise"}
    assert {(prompt_key(p), p.user_info) for p in added} <= own  # the same background as their pair
    assert sft_examples(guarded) == sft_examples(plain)  # the chosen answers are their pairs' own


def test_several_synth_runs_add_up_and_a_source_narrows_to_one_subset(synth_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "pairs.jsonl").write_text(json.dumps(pair(99, "concise", "No.", f"{LONG} (99)")) + "\n")
    one = everything(build(("synth",), synth=(synth_dir,), judge=OfflineJudge()))
    both = everything(build(("synth",), synth=(synth_dir, other), judge=OfflineJudge()))
    assert set(one) < set(both) and any(p.chosen == "No." for p in both)
    assert everything(build(("synth:diverse",), synth=(synth_dir,), judge=OfflineJudge())) == one
    assert not everything(build(("synth:priority",), synth=(synth_dir,), judge=OfflineJudge()))
    out = tmp_path / "out"
    assert main(["data", "metaalign", "--out", str(out), "--sources", "synth", "--synth",
                 f"{synth_dir},{other}"]) == 0
    assert any(p.chosen == "No." for p in read_meta_pairs(out / "train.jsonl") + read_meta_pairs(out / "valid.jsonl"))
    capsys.readouterr()
    for argv, message in ((["--sources", "synth:nope", "--synth", str(synth_dir)], "unknown subset 'nope'"),
                          (["--sources", "dsp", "--twins"], "--twins takes")):
        fresh = tmp_path / "fresh"
        assert main(["data", "metaalign", "--out", str(fresh), *argv]) == 2
        assert message in capsys.readouterr().err and not fresh.exists()
