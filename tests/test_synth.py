"""Pair synthesis with a stand-in decoder: the rollouts planned, resumed after a kill, and judged into pairs."""

import json
import random
from types import SimpleNamespace

import pytest

from personalign.data.synth import (NEUTRAL, SynthConfig, build_pairs, degenerate, loop_twins, looped,
                                      plan_rollouts, synthesize)
from personalign.answer_checks import loops
from personalign.errors import PersonalignError
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.relevance import RelevanceJudge
from personalign.evaluation.judges.trained import HashingEmbedder

# what the stand-in model writes under each preference: wordy, terse, or about cooking
ANSWERS = {NEUTRAL: "The sun is a star made of hot gas that shines on the planet every single day of the year.",
           "concise": "A star.",
           "informative": "The sun is an enormous, luminous sphere of hydrogen and helium plasma, fusing nuclei in "
                          "its core, radiating light, heat and charged particles across the whole solar system.",
           "I love cooking vegetables": "Cooking vegetables and roasting vegetables with love is what I love."}


class StandInEngine:
    def __init__(self, fail_after_batches=None):
        self.requests, self.batches, self.fail_after = [], 0, fail_after_batches

    def generate(self, requests):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.requests += requests
        return [SimpleNamespace(text=ANSWERS[r.preference.label if r.method != "base" else NEUTRAL],
                                finish_reason="eos") for r in requests]


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


def test_pairs_are_the_judged_best_and_worst_and_a_killed_run_resumes(setup):
    tmp_path, config, judges = setup
    with pytest.raises(KeyboardInterrupt):
        synthesize(config, tmp_path / "out", engine=StandInEngine(fail_after_batches=2), progress=False, **judges)
    assert len((tmp_path / "out" / "rollouts.jsonl").read_text().splitlines()) == 8
    engine = StandInEngine()
    counts = synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert len(engine.requests) == 4  # only the rollouts the killed run had not finished
    rollout_ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollout_ids) == len(set(rollout_ids)) == 12
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    twins = [json.loads(line) for line in (tmp_path / "out" / "loop_pairs.jsonl").read_text().splitlines()]
    assert counts == {"rollouts": 12, "pairs": len(pairs), "dimension pairs": 6, "free-text pairs": 3,
                      "loop pairs": len(twins)}
    by_preference = {p["preference"]: p for p in pairs}
    assert by_preference["concise"]["chosen"] == ANSWERS["concise"]
    assert by_preference["concise"]["rejected"] == ANSWERS["informative"]
    assert by_preference["informative"]["chosen"] == ANSWERS["informative"]
    assert by_preference["I love cooking vegetables"]["chosen"] == ANSWERS["I love cooking vegetables"]
    assert all(p["margin"] >= config.min_margin for p in pairs)


def test_resuming_with_other_settings_is_refused(setup):
    tmp_path, config, judges = setup
    synthesize(config, tmp_path / "out", engine=StandInEngine(), progress=False, **judges)
    config.min_margin, config.loop_pairs = 0.0, 1.0  # these only shape the pairs, rebuilt without new rollouts
    engine = StandInEngine()
    synthesize(config, tmp_path / "out", engine=engine, progress=False, **judges)
    assert engine.requests == [] and (tmp_path / "out" / "loop_pairs.jsonl").read_text()
    config.temperature = 1.0
    with pytest.raises(PersonalignError, match="temperature"):
        synthesize(config, tmp_path / "out", engine=StandInEngine(), progress=False, **judges)


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
    pairs = {p["preference"]: p for p in build_pairs(rollouts, config, **judges)}
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
    assert all(t["chosen"] == ANSWERS["informative"] and loops(t["rejected"]) and t["judge"] == "loop" for t in twins)
    assert loop_twins(pairs, 0.0, seed=0) == [] and len(loop_twins(pairs, 1.0, seed=0)) == 100


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
    unchecked = {p["preference"]: p for p in build_pairs(rollouts, SynthConfig(**{**config.__dict__,
                                                                                   "min_on_question": 0.0}), **judges)}
    assert unchecked["friendly"]["chosen"] == texts["friendly"]  # the proxy alone is gamed
    pairs = {p["preference"]: p for p in build_pairs(rollouts, config, **judges)}
    assert pairs["friendly"]["chosen"] == texts["unfriendly"] and pairs["friendly"]["rejected_may_be_chosen"]
    assert pairs["unfriendly"]["rejected"] == texts["friendly"] and not pairs["unfriendly"]["rejected_may_be_chosen"]
