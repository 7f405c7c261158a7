"""Constraint preferences: the catalog's word lists, the answers written per item (resumed after a kill), the pairs
and the held-out multiple-choice set (data/constraints.py), and multiple-choice accuracy (eval-choices)."""

import json
import pytest

from personalign.cli import main
from personalign.data.constraint_catalog import CONSTRAINTS, DOMAIN_QUESTIONS, Constraint
from personalign.data.constraints import (FRAMES, ConstraintConfig, build_minimal_choices, flipped, is_held_out,
                                          item_constraints, names_item, plan_answers, respects, split_catalog,
                                          violates, write)
from personalign.errors import PersonalignError
from personalign.evaluation.choices import accuracy_table, cluster_interval, credit, read_choices, score_items
from tiny import StandInEngine

VEGETARIAN = next(c for c in CONSTRAINTS if c.name == "vegetarian")
DRIVE = next(c for c in CONSTRAINTS if c.name == "doesn't drive")
# a two-constraint catalog, so that one is trained on and one held out (hold_out_every=2)
SMALL = (Constraint("vegetarian", ("I'm vegetarian.",), "meal", ("a lentil curry", "a bean chili"),
                    ("a grilled steak", "chicken wings"), VEGETARIAN.flags),
         Constraint("doesn't drive", ("I don't drive.",), "getting_around", ("the train", "a city bus"),
                    ("a rental car", "driving your own car"), DRIVE.flags))


def test_the_catalog_is_consistent():
    assert len(CONSTRAINTS) >= 25 and len({c.name for c in CONSTRAINTS}) == len(CONSTRAINTS)
    for constraint in CONSTRAINTS:
        assert constraint.domain in DOMAIN_QUESTIONS and len(constraint.texts) >= 2
        # what a constraint suits is never flagged by it; what it rules out mostly is (else no answer could check)
        assert not [item for item in constraint.suits if constraint.violated_by(item)], constraint.name
        assert sum(constraint.violated_by(item) for item in constraint.rules_out) >= 3, constraint.name


def test_answers_are_checked_against_the_constraint_and_their_item():
    assert names_item("Tonight, make a lentil curry with rice.", "a lentil curry")
    assert not names_item("Tonight, make something warm.", "a lentil curry")
    assert respects(VEGETARIAN, "Make a lentil curry with spinach.", "a lentil curry")
    assert not respects(VEGETARIAN, "Make a lentil curry with chicken.", "a lentil curry")
    assert violates(VEGETARIAN, "Grill a steak, medium rare.", "a grilled steak")
    assert not violates(VEGETARIAN, "I'm sorry, I can't suggest recipes.", "a grilled steak")
    assert not respects(VEGETARIAN, " ".join(["a lentil curry is nice."] * 8), "a lentil curry")  # a loop
    no_alcohol = next(c for c in CONSTRAINTS if c.name == "no alcohol")
    assert no_alcohol.violated_by("Order a glass of wine.") and not no_alcohol.violated_by("a non-alcoholic spritz")


class ConstraintStandIn(StandInEngine):
    """Writes an answer that names the requested item; the steak answer names nothing flagged."""

    def answer(self, request):
        item = request.prompt.split(" Recommend ")[1].rstrip(".")
        seed = request.seed % 7
        if item == "chicken wings":
            return f"Crispy chicken wings with a honey glaze, version {seed}, are easy to share."
        if item == "a grilled steak":
            return f"A grilled dish, version {seed}, is always a crowd-pleaser."  # names no meat: not violating
        return f"I suggest {item}, version {seed}: it is simple, and everyone can enjoy it."


def test_pairs_and_choices_are_built_and_a_killed_run_resumes(tmp_path):
    config = ConstraintConfig(samples=2, hold_out_every=2, options=2, batch_size=8, pairs_per_question=3)
    jobs = plan_answers(config, SMALL)
    questions = len(DOMAIN_QUESTIONS["meal"]) + len(DOMAIN_QUESTIONS["getting_around"])
    assert len(jobs) == len({j["id"] for j in jobs}) == questions * 4 * 2
    with pytest.raises(KeyboardInterrupt):
        write(config, tmp_path, ConstraintStandIn(fail_after_batches=2), progress=False, constraints=SMALL)
    engine = ConstraintStandIn()
    counts = write(config, tmp_path, engine, progress=False, constraints=SMALL)
    assert len(engine.requests) == len(jobs) - 16  # only what the killed run had not written
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    choices = read_choices(tmp_path / "choices.jsonl")
    # vegetarian is trained on (its last question kept for the seen choices); "doesn't drive" is held out
    assert not is_held_out(0, config) and is_held_out(1, config)
    assert {p["constraint"] for p in pairs} == {"vegetarian"}
    assert {p["prompt"] for p in pairs} == set(DOMAIN_QUESTIONS["meal"][:-1])
    assert all("chicken wings" in p["rejected"].lower() and p["rejected_item"] == "chicken wings" for p in pairs)
    assert all(p["chosen_item"] in ("a lentil curry", "a bean chili") for p in pairs)
    assert len(pairs) == 3 * (len(DOMAIN_QUESTIONS["meal"]) - 1)
    seen = [c for c in choices if c["group"] == "seen"]
    unseen = [c for c in choices if c["group"] == "unseen"]
    assert {c["prompt"] for c in seen} == {DOMAIN_QUESTIONS["meal"][-1]}
    assert {c["prompt"] for c in unseen} == set(DOMAIN_QUESTIONS["getting_around"])
    for item in choices:
        constraint = VEGETARIAN if item["constraint"] == "vegetarian" else DRIVE
        right = item["options"][item["answer"]]
        assert not constraint.violated_by(right)
        assert all(constraint.violated_by(o) for i, o in enumerate(item["options"]) if i != item["answer"])
        assert len({len(o.split()) for o in item["options"]}) == 1  # cut to the same number of words
    assert counts["pairs"] == len(pairs) and counts["choices (unseen)"] == len(unseen)
    assert read_choices(tmp_path / "choices_minimal.jsonl") == build_minimal_choices(SMALL, config)
    config.temperature = 1.0
    with pytest.raises(PersonalignError, match="temperature"):
        write(config, tmp_path, ConstraintStandIn(), progress=False, constraints=SMALL)


def test_minimal_choices_differ_only_in_the_item_and_keep_the_held_out_questions():
    config = ConstraintConfig(hold_out_every=2, options=2)
    items = build_minimal_choices(SMALL, config)
    assert items == build_minimal_choices(SMALL, config)  # a function of the catalog and the seed
    seen = [c for c in items if c["group"] == "seen"]
    unseen = [c for c in items if c["group"] == "unseen"]
    assert {c["constraint"] for c in seen} == {"vegetarian"} and {c["constraint"] for c in unseen} == {"doesn't drive"}
    assert {c["prompt"] for c in seen} == {DOMAIN_QUESTIONS["meal"][-1]}  # the question pairs never use
    assert {c["prompt"] for c in unseen} == set(DOMAIN_QUESTIONS["getting_around"])
    assert len(seen) == 2 and len(unseen) == 2 * len(DOMAIN_QUESTIONS["getting_around"])  # one per suited item
    for item in items:
        constraint = SMALL[0] if item["constraint"] == "vegetarian" else SMALL[1]
        named = [next((frame, thing) for frame in FRAMES for thing in (*constraint.suits, *constraint.rules_out)
                      if option == frame.format(item=thing)) for option in item["options"]]
        assert len({frame for frame, _ in named}) == 1  # one sentence around every option: only the item differs
        things = [thing for _, thing in named]
        right = item["options"][item["answer"]]
        assert things[item["answer"]] in constraint.suits and not constraint.violated_by(right)
        assert all(t in constraint.rules_out and constraint.violated_by(o)
                   for i, (t, o) in enumerate(zip(things, item["options"])) if i != item["answer"])
    assert {c["answer"] for c in items} == {0, 1}  # the respecting option is not always first
    assert len(build_minimal_choices(SMALL, ConstraintConfig(hold_out_every=2, options=3))) == len(items)
    assert build_minimal_choices(SMALL, ConstraintConfig(hold_out_every=2, options=4)) == []  # too few ruled out


def test_single_item_constraints_rule_out_their_item_and_leave_the_held_out_ones_alone():
    trained, held_out = split_catalog(CONSTRAINTS, ConstraintConfig())
    derived = item_constraints(trained, held_out)
    assert len(derived) > 4 * len(CONSTRAINTS) and len({c.name for c in derived}) == len(derived)
    for constraint in derived:
        (item,) = constraint.rules_out
        assert constraint.violated_by(item) and item in constraint.texts[0]
        assert constraint.suits and not [other for other in constraint.suits if constraint.violated_by(other)]
        for other in (item, *constraint.suits):  # nothing the unseen constraints name or flag
            assert not any(other in (*h.suits, *h.rules_out) or h.violated_by(other) for h in held_out), other
    steak = next(c for c in derived if c.rules_out == ("a grilled steak",))
    assert steak.violated_by("Grill a steak tonight.") and not steak.violated_by("Make a lentil curry.")


def test_single_item_pairs_come_in_both_orders_under_the_two_items(tmp_path):
    config = ConstraintConfig(samples=1, hold_out_every=2, options=2, batch_size=8, item_pairs_per_question=1)
    counts = write(config, tmp_path, ConstraintStandIn(), progress=False, constraints=SMALL)
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    items = [p for p in pairs if p["source"] == "constraint-item"]
    assert items and counts["of them on single items"] == len(items)
    assert {p["prompt"] for p in items} == set(DOMAIN_QUESTIONS["meal"][:-1])  # the held-out domain gives none
    for pair in items:
        assert pair["constraint"] == f"item (meal): {pair['rejected_item']}"
        assert names_item(pair["preference"], pair["rejected_item"])
        assert names_item(pair["rejected"], pair["rejected_item"]) and names_item(pair["chosen"], pair["chosen_item"])
    by_answers = {(p["prompt"], p["chosen"], p["rejected"]) for p in items}
    assert any((q, r, c) in by_answers for q, c, r in by_answers)  # the same two answers, labels flipped
    write(ConstraintConfig(samples=1, hold_out_every=2, options=2, batch_size=8), tmp_path, ConstraintStandIn(),
          progress=False, constraints=SMALL)
    plain = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert plain == [p for p in pairs if p["source"] == "constraint"]  # the setting only adds pairs


def test_a_tie_at_the_top_earns_a_share():
    assert credit([1.0, 0.5], 0) == 1 and credit([1.0, 0.5], 1) == 0
    assert credit([0.0, 0.0, 0.0], 2) == pytest.approx(1 / 3)


def test_each_score_is_credited_per_group():
    items = [dict(preference="p", prompt="q", options=["a", "b"], answer=0, group="seen"),
             dict(preference="p", prompt="q", options=["a", "b", "c"], answer=2, group="unseen")]
    # the stand-in: log-likelihood prefers the first option, the reward the last
    scorer = lambda prompt, preference, options: ([-float(i) for i in range(len(options))],
                                                  [3.0 * i for i in range(len(options))])
    rows = {r["group"]: r for r in accuracy_table(score_items(items, scorer, beta=1.0))}
    assert rows["seen"]["prompting"] == 1 and rows["seen"]["reward"] == 0 and rows["seen"]["pad"] == 0
    assert rows["unseen"]["prompting"] == 0 and rows["unseen"]["reward"] == 1 and rows["unseen"]["pad"] == 1
    assert rows["(all)"]["chance"] == pytest.approx((1 / 2 + 1 / 3) / 2) and rows["(all)"]["reward"] == 0.5
    assert accuracy_table(score_items(items, scorer, beta=0.1))[0]["pad"] == 1  # a small beta: the likelihood


def test_intervals_resample_whole_constraints():
    def items(values_by_constraint):
        return [dict(constraint=name, value=v) for name, values in values_by_constraint.items()
                for v in values]

    value = lambda item: item["value"]
    # two constraints of ten items each, one always right, one always wrong: the items are 20, the draws two
    assert cluster_interval(items({"a": [1] * 10, "b": [0] * 10}), value) == [0.0, 1.0]
    assert cluster_interval(items({"a": [1] * 10, "b": [1] * 10}), value) == [1.0, 1.0]
    few = cluster_interval(items({f"c{i}": [i % 2] * 4 for i in range(6)}), value)
    many = cluster_interval(items({f"c{i}": [i % 2] * 4 for i in range(60)}), value)
    assert few[0] < many[0] < 0.5 < many[1] < few[1]  # more constraints, a narrower interval
    assert cluster_interval(items({"a": [1, 0], "b": [0]}), value) == cluster_interval(items({"a": [1, 0], "b": [0]}),
                                                                                      value)  # seeded


def test_the_table_gives_the_rewards_lead_over_prompting_with_its_interval():
    items = [dict(preference=f"p{i}", prompt="q", options=["a", "b"], answer=i % 2, group="g") for i in range(8)]
    scorer = lambda prompt, preference, options: ([0.0, -1.0], [0.0, 1.0])  # prompting picks a, the reward b
    (row,) = accuracy_table(score_items(items, scorer))
    assert row["prompting"] == row["reward"] == 0.5 and row["reward_minus_prompting"] == 0
    low, high = row["reward_minus_prompting_interval"]
    assert low < 0 < high and row["reward_interval"][0] < 0.5 < row["reward_interval"][1]


@pytest.mark.parametrize("line, message", [
    ('{"preference": "p", "prompt": "q", "options": ["a"], "answer": 0}', "two or more"),
    ('{"preference": "p", "prompt": "q", "options": ["a", "b"], "answer": 2}', "index of an option"),
    ('{"preference": "", "prompt": "q", "options": ["a", "b"], "answer": 0}', "preference"),
    ('{"preference": "p", "prompt": "", "options": ["a", "b"], "answer": 0}', "prompt is empty"),
    ('[1, 2]', "JSON object")])
def test_bad_choice_files_exit_2_naming_the_line(tmp_path, capsys, line, message):
    path = tmp_path / "choices.jsonl"
    path.write_text(line + "\n")
    assert main(["eval-choices", "--choices", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1:" in err and message in err and "Traceback" not in err


def test_eval_choices_scores_with_a_persrm(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "choices.jsonl"
    items = [dict(preference="I'm vegetarian.", prompt="What should I cook?", answer=0, group="seen",
                  options=["A lentil curry.", "A grilled steak."]),
             dict(preference="I don't drive.", prompt="How do I get there?", answer=1, group="unseen",
                  options=["Rent a car.", "Take the train.", "Drive there."])]
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    out = tmp_path / "scored.jsonl"
    assert main(["eval-choices", "--choices", str(path), "--base", tiny_model_dir, "--persrm", "untrained",
                 "--json", "--out", str(out)]) == 0
    rows = {r["group"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["seen"]["reward"] == 0.5 and rows["unseen"]["reward"] == pytest.approx(1 / 3)  # all rewards 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(s["scores"]["prompting"]) for s in scored] == [2, 3]
    assert all(s["scores"]["pad"] == s["scores"]["prompting"] for s in scored)


@pytest.mark.parametrize("argv, message", [(["--options", "1"], "options must be >= 2"),
                                           (["--hold-out-every", "1"], "hold_out_every must be >= 2"),
                                           (["--samples", "0"], "samples must be >= 1")])
def test_bad_constraint_settings_exit_2_before_anything_is_written(tmp_path, capsys, argv, message):
    assert main(["data", "constraints", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_pair_flips_under_a_constraint_of_the_domain_that_its_chosen_answer_violates():
    gluten = next(c for c in CONSTRAINTS if c.name == "gluten-free")
    pair = dict(preference=VEGETARIAN.texts[0], prompt="What should I cook?", constraint="vegetarian",
                chosen="Make a lentil curry over spaghetti.", rejected="Make chicken wings with rice.",
                chosen_item="a lentil curry", rejected_item="chicken wings")
    flips = flipped([pair, dict(pair, preference=VEGETARIAN.texts[1])], (VEGETARIAN, gluten, DRIVE))
    assert [f["preference"] for f in flips] == list(gluten.texts)  # once per statement of gluten-free, not twice
    assert all(f["chosen"] == pair["rejected"] and f["rejected"] == pair["chosen"] and f["constraint"] == "gluten-free"
               and f["flipped_from"] == "vegetarian" and f["chosen_item"] == "chicken wings" for f in flips)
    assert flipped([dict(pair, chosen="Make a lentil curry with rice.")], (VEGETARIAN, gluten)) == []


def test_metaalign_data_takes_a_constraint_run_with_its_flips(tmp_path, capsys):
    from personalign.data.metaalign import read_meta_pairs
    gluten = next(c for c in CONSTRAINTS if c.name == "gluten-free")
    records = [dict(preference=text, prompt=f"What should I cook on day {day}?", constraint=name, chosen=chosen,
                    rejected=rejected, **({"flipped_from": "vegetarian"} if name == "gluten-free" else {}))
               for day in range(12)
               for name, texts, chosen, rejected in (
                   ("vegetarian", VEGETARIAN.texts, "A lentil curry over spaghetti.", "Chicken wings with rice."),
                   ("gluten-free", gluten.texts, "Chicken wings with rice.", "A lentil curry over spaghetti."))
               for text in texts]
    run = tmp_path / "constraints"
    run.mkdir()
    (run / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "meta"
    assert main(["data", "metaalign", "--out", str(out), "--sources", "constraints", "--constraints", str(run),
                 "--valid-fraction", "0.3"]) == 0
    pairs = read_meta_pairs(out / "train.jsonl") + read_meta_pairs(out / "valid.jsonl")
    assert len(pairs) == len(records) and {p.preference for p in pairs} == {"constraint:vegetarian",
                                                                             "constraint:gluten-free"}
    assert all(p.explicit == (p.user_info in (VEGETARIAN.texts[0], gluten.texts[0])) and p.subset == "diverse"
               for p in pairs)
    for argv, message in ((["--sources", "constraints"], "go together"),
                          (["--sources", "constraints", "--constraints", str(tmp_path / "none")], "no pairs.jsonl")):
        assert main(["data", "metaalign", "--out", str(tmp_path / "fresh"), *argv]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "fresh").exists()
