"""Pair synthesis with a stand-in decoder: the rollouts planned, resumed after a kill, and judged into pairs."""

import json
import random
import re
import pytest

from personalign.data.synth import (NEUTRAL, SynthConfig, _may_be_chosen, build_pairs, judged_shortfall, loop_twins,
                                    looped, offtopic_twins, onpolicy_pairs, plan_rollouts, synthesize)
from personalign.answer_checks import degenerate, loops
from personalign.errors import PersonalignError
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.relevance import RelevanceJudge
from personalign.evaluation.judges.trained import HashingEmbedder
from tiny import StandInEngine

# what the stand-in model writes under each preference: wordy, terse, or about cooking
ANSWERS = {NEUTRAL: "The sun is a star made of hot gas that shines on the planet every single day of the year.",
           "concise": "A star.",
           "informative": "The sun is an enormous, luminous sphere of hydrogen and helium plasma, fusing nuclei in "
                          "its core, radiating light, heat and charged particles across the whole solar system.",
           "I love cooking vegetables": "Cooking vegetables and roasting vegetables with love is what I love."}


# what the stand-in writes with PAD: a loop for concise, a fine answer for informative
PAD_ANSWERS = {"concise": "Sun. " + " ".join(["a star, a star,"] * 8), "informative": ANSWERS["informative"]}


class SynthStandIn(StandInEngine):
    def answer(self, request):
        if request.method == "pad":
            return PAD_ANSWERS.get(request.preference.label)
        return ANSWERS[request.preference.label if request.method != "base" else NEUTRAL]

    def finish_reason(self, request):  # the wordy answer runs into the token limit, the others stop by themselves
        return "length" if request.method != "base" and request.preference.label == "informative" else "eos"


@pytest.fixture
def setup(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Tell me about the sun, part {i}."}) + "\n"
                               for i in range(3)))
    config = SynthConfig(prompts=str(prompts), limit=None, dimensions=("concise", "informative"),
                         free_text=("I love cooking vegetables",), free_per_prompt=1, batch_size=4, min_margin=0.5,
                         min_on_question=0.0)  # bag-of-words similarity is too crude for it: tested below
    judges = dict(offline_judge=OfflineJudge(), relevance_judge=RelevanceJudge(HashingEmbedder()))
    return tmp_path, config, judges


def test_each_prompt_is_rolled_out_neutrally_and_under_every_preference(setup):
    _, config, _ = setup
    from personalign.data.prompt_sets import load_prompts
    jobs = plan_rollouts(load_prompts(config.prompts), config)
    assert [j["preference"] for j in jobs if j["prompt_id"] == "q0"] == \
        [NEUTRAL, "concise", "informative", "I love cooking vegetables"]
    assert len({j["id"] for j in jobs}) == len(jobs) == 12


def test_samples_roll_each_preference_out_several_times_seeded_apart_and_the_neutral_once(setup):
    tmp_path, config, judges = setup
    config.samples, config.method = 3, "meta-prompting"
    engine = SynthStandIn()
    synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    q0 = [r for r in engine.requests if "part 0" in r.prompt]
    assert [(r.method, r.preference.label) for r in q0] == [("base", NEUTRAL)] + \
        [("meta-prompting", p) for p in ("concise", "informative", "I love cooking vegetables") for _ in range(3)]
    assert len({r.seed for r in q0}) == len(q0) == 10
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    rollouts = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "rollouts.jsonl").read_text().splitlines())}
    assert len(rollouts) == 30 and pairs
    # each pair names the very rollouts it holds
    assert all(rollouts[p["chosen_id"]]["text"] == p["chosen"] and rollouts[p["rejected_id"]]["text"] == p["rejected"]
               and rollouts[p["chosen_id"]]["preference"] == p["chosen_under"] for p in pairs)


def test_a_run_saved_before_method_and_samples_resumes_with_their_old_values(setup):
    tmp_path, config, judges = setup
    synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)
    saved = tmp_path / "out" / "synth_config.json"
    old = {k: v for k, v in json.loads(saved.read_text()).items() if k not in ("method", "samples")}
    saved.write_text(json.dumps(old))
    engine = SynthStandIn()
    synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert engine.requests == []
    config.method = "meta-prompting"
    with pytest.raises(PersonalignError, match="method"):
        synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)


def test_pairs_are_the_judged_best_and_worst_and_a_killed_run_resumes(setup):
    tmp_path, config, judges = setup
    with pytest.raises(KeyboardInterrupt):
        synthesize(config, tmp_path / "out", engine=SynthStandIn(fail_after_batches=2), progress=False, **judges)
    assert len((tmp_path / "out" / "rollouts.jsonl").read_text().splitlines()) == 8
    engine = SynthStandIn()
    counts = synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert len(engine.requests) == 4  # only the rollouts the killed run had not finished
    rollout_ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollout_ids) == len(set(rollout_ids)) == 12
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    twins = [json.loads(line) for line in (tmp_path / "out" / "loop_pairs.jsonl").read_text().splitlines()]
    offtopic = [json.loads(line) for line in (tmp_path / "out" / "offtopic_pairs.jsonl").read_text().splitlines()]
    assert counts == {"rollouts": 12, "pairs": len(pairs), "dimension pairs": 6, "free-text pairs": 3,
                      "loop pairs": len(twins), "off-topic pairs": len(offtopic)}
    by_preference = {p["preference"]: p for p in pairs}
    assert by_preference["concise"]["chosen"] == ANSWERS["concise"]
    assert by_preference["concise"]["rejected"] == ANSWERS["informative"]
    # the terse answer stopped by itself, the wordy one at the token limit: only the first keeps its end of turn
    assert (by_preference["concise"]["chosen_ends"], by_preference["concise"]["rejected_ends"]) == (True, False)
    assert (by_preference["informative"]["chosen_ends"], by_preference["informative"]["rejected_ends"]) == \
        (False, True)
    assert all(not t["rejected_ends"] for t in twins)  # a looped copy is cut, never whole
    chosen_ends = {(p["prompt_id"], p["preference"]): p["chosen_ends"] for p in pairs}
    assert all(t["rejected_ends"] == chosen_ends[(t["rejected_prompt_id"], t["preference"])] for t in offtopic)
    assert by_preference["informative"]["chosen"] == ANSWERS["informative"]
    assert by_preference["I love cooking vegetables"]["chosen"] == ANSWERS["I love cooking vegetables"]
    assert all(p["margin"] >= config.min_margin for p in pairs)


def test_resuming_with_other_settings_is_refused(setup):
    tmp_path, config, judges = setup
    synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)
    config.min_margin, config.loop_pairs = 0.0, 1.0  # these only shape the pairs, rebuilt without new rollouts
    engine = SynthStandIn()
    synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert engine.requests == [] and (tmp_path / "out" / "loop_pairs.jsonl").read_text()
    config.temperature = 1.0
    with pytest.raises(PersonalignError, match="temperature"):
        synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)


def test_pads_own_failures_are_rejected_on_policy_and_only_one_persrms_rollouts_are_kept(setup):
    tmp_path, config, judges = setup
    synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)  # without PAD first
    config.on_policy, config.on_policy_identity = "persrm", "persrm sha256:1"
    engine = SynthStandIn()
    counts = synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert [(r.method, r.temperature) for r in engine.requests] == [("pad", 0)] * 6  # only PAD's, greedy
    assert counts["PAD rollouts"] == 6 and counts["on-policy pairs"] == 3
    failures = [json.loads(line) for line in (tmp_path / "out" / "onpolicy_pairs.jsonl").read_text().splitlines()]
    pairs = {(p["prompt_id"], p["preference"]): p for p in
             map(json.loads, (tmp_path / "out" / "pairs.jsonl").read_text().splitlines())}
    assert len(failures) == 3 and all(f["preference"] == "concise" and f["rejected_flaw"] == "loop" for f in failures)
    assert all(f["rejected"] == PAD_ANSWERS["concise"] and f["chosen"] == pairs[f["prompt_id"], "concise"]["chosen"]
               for f in failures)
    assert counts["pairs"] == len(pairs)  # PAD's rollouts are not candidates of the judged pairs
    config.on_policy_identity = "persrm sha256:2"
    with pytest.raises(PersonalignError, match="another PersRM"):
        synthesize(config, tmp_path / "out", engine=SynthStandIn(), progress=False, **judges)


def test_a_pad_answer_that_leaves_the_question_is_rejected_on_policy():
    pair = dict(prompt_id="q0", preference="friendly", prompt="Tell me about the sun.", chosen="The sun is a warm star.",
                rejected="Star.")
    neutral = dict(prompt_id="q0", preference=NEUTRAL, prompt=pair["prompt"], text="The sun is a star, hot gas.")
    pad = [dict(id=f"q{i}\tpad:friendly", prompt_id="q0", preference="friendly", prompt=pair["prompt"], text=text)
           for i, text in enumerate(("Friendly friends are lovely, be friendly to your friends today!",
                                     "The sun is a lovely, friendly star."))]
    failures = onpolicy_pairs([pair], pad, [neutral], 0.5, RelevanceJudge(HashingEmbedder()))
    assert [(f["rejected"], f["rejected_id"], f["rejected_flaw"]) for f in failures] == \
        [(pad[0]["text"], pad[0]["id"], "off-question")]
    assert onpolicy_pairs([pair], pad, [neutral], 0.0, None) == []  # no check asked for


def test_a_clean_pad_answer_the_judge_finds_clearly_worse_is_rejected_on_policy_when_asked():
    pair = dict(prompt_id="q0", preference="friendly", prompt="Tell me about the sun.",
                chosen="The sun is a lovely, wonderful, warm star. Enjoy it!", rejected="Star.")
    neutral = dict(prompt_id="q0", preference=NEUTRAL, prompt=pair["prompt"], text="The sun is a star, hot gas.")
    pad = [dict(id=f"q0\tpad:friendly#{i}", prompt_id="q0", preference="friendly", prompt=pair["prompt"], text=text)
           for i, text in enumerate(("The sun is a star made of hot gas.",
                                     "The sun is a lovely, wonderful, warm star. Enjoy it, friend!",
                                     "The sun is the sun is the sun is the sun is the sun is the sun is the sun."))]
    judge = OfflineJudge()
    spread = {"friendly": 0.3}
    failures = onpolicy_pairs([pair], pad, [neutral], 0.0, None, judged_shortfall(judge, spread, 1.0))
    assert [(f["rejected"], f["rejected_flaw"]) for f in failures] == \
        [(pad[0]["text"], "judged worse"), (pad[2]["text"], "loop")]
    assert all(f["chosen"] == pair["chosen"] and f["judge"] == "on-policy" for f in failures)
    # a margin the gap does not reach, or no check: only the failure
    assert [f["rejected_flaw"] for f in onpolicy_pairs([pair], pad, [neutral], 0.0, None,
                                                       judged_shortfall(judge, spread, 100.0))] == ["loop"]
    assert [f["rejected_flaw"] for f in onpolicy_pairs([pair], pad, [neutral], 0.0, None)] == ["loop"]
    with pytest.raises(PersonalignError, match="on_policy_margin"):  # without --on-policy: no PAD answers to judge
        SynthConfig(free_per_prompt=0, on_policy_margin=1.0).validate()


def test_a_rollout_that_echoes_the_template_or_loops_is_never_chosen(setup):
    _, config, judges = setup
    echo = "[Guidelines] Your task is to be brief."
    loop = " ".join(["I am here to help."] * 6)
    assert degenerate(echo) and degenerate(loop) and not degenerate(ANSWERS["informative"])
    texts = {NEUTRAL: ANSWERS[NEUTRAL], "concise": echo, "informative": ANSWERS["informative"],
             "I love cooking vegetables": loop}
    rollouts = [dict(id=f"q0\t{p}", prompt_id="q0", prompt="Tell me about the sun.", preference=p, text=t)
                for p, t in texts.items()]
    config.min_margin = 0.0
    pairs = {p["preference"]: p for p in build_pairs(rollouts, config, **judges)[0]}
    # the echo is the shortest answer, but the most concise usable one is the neutral answer; the loop can lose
    assert pairs["concise"]["chosen"] == ANSWERS[NEUTRAL] and pairs["concise"]["rejected"] == loop
    assert pairs["informative"]["chosen"] == ANSWERS["informative"] and pairs["informative"]["rejected"] == loop
    assert all(p["chosen"] not in (echo, loop) for p in pairs.values())


def test_a_looped_copy_keeps_the_opening_then_repeats_and_counts_as_a_loop():
    text = ANSWERS["informative"]
    for seed in range(20):
        copy = looped(text, random.Random(seed))
        opening = copy.split()[:len(text.split()) // 6]
        assert text.split()[:len(opening)] == opening and copy.startswith(" ".join(opening))
        assert loops(copy) and len(copy.split()) >= len(text.split())
    assert looped(ANSWERS["concise"], random.Random(0)) is None  # too short to loop on its own words


def test_loop_twins_keep_the_chosen_answer_and_reject_its_loop():
    pairs = [dict(preference=p, prompt="Tell me about the sun.", prompt_id=f"q{i}", chosen=ANSWERS["informative"],
                  rejected=ANSWERS["concise"], judge="offline", margin=2.0) for i, p in enumerate(["a", "b"] * 50)]
    twins = loop_twins(pairs, 0.35, seed=0)
    assert 15 <= len(twins) <= 55 and twins == loop_twins(pairs, 0.35, seed=0)
    assert all(t["chosen"] == ANSWERS["informative"] and loops(t["rejected"]) and t["judge"] == "loop"
               and t["rejected_id"] is None for t in twins)
    assert loop_twins(pairs, 0.0, seed=0) == [] and len(loop_twins(pairs, 1.0, seed=0)) == 100


def test_offtopic_twins_reject_another_prompts_answer_under_the_same_preference():
    pairs = [dict(preference=p, prompt=f"Question {i}?", prompt_id=f"q{i}", chosen=f"Answer {i} in style {p}.",
                  rejected="No.", judge="offline", margin=2.0, chosen_ends=i % 3 == 0, chosen_id=f"q{i}\t{p}")
             for i, p in enumerate(["a", "b"] * 50)]
    twins = offtopic_twins(pairs, 0.5, seed=0)
    assert 25 <= len(twins) <= 75 and twins == offtopic_twins(pairs, 0.5, seed=0)
    own = {pair["prompt_id"]: pair for pair in pairs}
    for twin in twins:
        other = own[twin["rejected_prompt_id"]]
        assert twin["chosen"] == own[twin["prompt_id"]]["chosen"] and twin["judge"] == "offtopic"
        assert other["prompt_id"] != twin["prompt_id"] and other["preference"] == twin["preference"]
        assert twin["rejected"] == other["chosen"] and twin["rejected_ends"] == other["chosen_ends"]
        assert twin["rejected_id"] == other["chosen_id"]
    assert offtopic_twins(pairs, 0.0, seed=0) == [] and len(offtopic_twins(pairs, 1.0, seed=0)) == 100
    assert offtopic_twins(pairs[:1], 1.0, seed=0) == []  # no other prompt under that preference


def test_an_answer_that_leaves_the_question_is_never_chosen():
    """The real MiniLM: VADER likes the cheerful answer that forgets the spelling question best; with the check the
    friendly pair chooses the cheerful answer that also spells the word, and says its rejected one may not be
    chosen under the opposite preference."""
    prompt = "How do you spell necessary?"
    texts = {NEUTRAL: "Necessary is spelled n-e-c-e-s-s-a-r-y: one c and two s.",
             "friendly": "Awesome!! I'm so happy and excited to help you today, you are wonderful, have a great day!",
             "unfriendly": "Happy to help! Necessary is spelled n-e-c-e-s-s-a-r-y, with one c and two s. You have got "
                           "this, great job!"}
    rollouts = [dict(id=f"q0\t{p}", prompt_id="q0", prompt=prompt, preference=p, text=t) for p, t in texts.items()]
    config = SynthConfig(dimensions=("friendly", "unfriendly"), min_margin=0.0)
    judges = dict(offline_judge=OfflineJudge(), relevance_judge=RelevanceJudge())
    unchecked_config = SynthConfig(**{**config.__dict__, "min_on_question": 0.0})
    unchecked = {p["preference"]: p for p in build_pairs(rollouts, unchecked_config, **judges)[0]}
    assert unchecked["friendly"]["chosen"] == texts["friendly"]  # the proxy alone is gamed
    pairs = {p["preference"]: p for p in build_pairs(rollouts, config, **judges)[0]}
    assert pairs["friendly"]["chosen"] == texts["unfriendly"] and pairs["friendly"]["rejected_may_be_chosen"]
    assert pairs["unfriendly"]["rejected"] == texts["friendly"] and not pairs["unfriendly"]["rejected_may_be_chosen"]


def test_each_candidate_keeps_its_own_on_question_verdict_after_a_degenerate_one():
    """A looping candidate before an off-question one: each is ruled out for its own fault, the rest may be chosen."""
    prompt = "Tell me about the sun."
    texts = {NEUTRAL: "The sun is a star made of hot gas that shines on the planet every day.",
             "concise": "The sun, the sun, the sun, the sun, the sun, the sun, the sun, the sun, the sun, the sun.",
             "friendly": "Cooking vegetables and roasting vegetables with love is what I love.",
             "informative": "The sun is the star at the centre of the solar system, a ball of hot gas."}
    rollouts = [dict(id=f"q0\t{p}", prompt_id="q0", prompt=prompt, preference=p, text=t) for p, t in texts.items()]
    assert degenerate(texts["concise"]) and not degenerate(texts["friendly"])
    by_prompt = {"q0": rollouts}
    assert _may_be_chosen(by_prompt, 0.5, RelevanceJudge(HashingEmbedder())) == {"q0": [True, False, False, True]}


@pytest.mark.parametrize("argv, message", [
    (["--on-policy", "untrained"], "needs a trained PersRM"),
    (["--on-policy", "no/such/dir"], "is not a model directory"),
    (["--offtopic-pairs", "1.5"], "offtopic_pairs must be in [0, 1]")])
def test_bad_synth_settings_exit_2_before_anything_is_written(tmp_path, capsys, argv, message):
    from personalign.cli import main
    assert main(["data", "synth", "--out", str(tmp_path / "out"), "--free-text", "none", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_all_free_text_gathers_every_stated_preference_of_the_shared_data():
    from personalign.data.free_text import all_free_text
    from personalign.data.synth import janus_preferences
    try:
        texts = all_free_text()
    except PersonalignError as error:
        pytest.skip(f"shared data: {error}")
    assert len(texts) == len(set(texts)) >= 140 and texts[:102] == janus_preferences()
    assert "Your answer should be creative as much as possible." in texts
    assert any(t.startswith("I am an academic") for t in texts) and "I teach literature at a university." in texts


def test_multifaceted_preferences_take_one_example_of_each_janus_dimension():
    from personalign.data.free_text import JANUS_DIMENSIONS, all_free_text, multifaceted_preferences, wide_free_text
    from personalign.data.synth import janus_preferences
    try:
        combined = multifaceted_preferences(50, seed=3)
    except PersonalignError as error:
        pytest.skip(f"shared data: {error}")
    assert len(set(combined)) == 50 and combined == multifaceted_preferences(50, seed=3)
    assert combined != multifaceted_preferences(50, seed=4)
    examples = {text.rstrip(".") for text in janus_preferences()}
    shape = re.compile(r"\. ".join(f"{dim}: (.+)" for dim in JANUS_DIMENSIONS) + r"\.")
    for text in combined:
        assert all(example in examples for example in shape.fullmatch(text).groups())
    wide = wide_free_text()
    assert len(wide) == len(set(wide)) >= 300 and wide[:len(all_free_text())] == all_free_text()
