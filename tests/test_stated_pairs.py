"""`train-policy --dpo-pairs stated`: the policy's greedy answer under a stated preference, chosen over its greedy
answer under a background that implies the preference (training/stated_pairs.py)."""

import json

import pytest

from personalign.answer_checks import degenerate
from personalign.data.metaalign import MetaPair, as_record
from personalign.errors import PersonalignError
from personalign.training import stated_pairs as stating
from personalign.training.policy import train_policy
from personalign.training.policy_config import DPOStage
from personalign.training.sampled_pairs import SAMPLED_FILE, greedy_answers
from test_train_policy import FRUIT, configs, toy_pairs, write_toy_data
from tiny import tiny_llama

BACKGROUNDS = {"apple": "I grow apples on a farm.", "banana": "I import bananas for a living."}


def implied_pairs(n: int) -> list[MetaPair]:
    """toy_pairs(n) and, for each, the same pair under a background that implies its preference."""
    explicit = toy_pairs(n)
    word = {p.user_info: p.chosen for p in explicit}
    return explicit + [MetaPair(p.preference, p.system_info, BACKGROUNDS[word[p.user_info]], p.prompt, p.chosen,
                                p.rejected, p.subset, False) for p in explicit]


def test_the_stated_answer_is_chosen_over_the_answer_to_the_background_and_a_rerun_reads_them_back(
        tmp_path, smol_tokenizer, monkeypatch):
    policy, pairs = tiny_llama(0).eval(), implied_pairs(4)
    stated = {word: text for text, word in FRUIT.items()}
    assert stating.stated_user_infos(pairs) == {f"toy:{w}": stated[w] for w in stated}
    implicit = [p for p in pairs if not p.explicit]
    implied = greedy_answers(policy, smol_tokenizer, implicit, 6)
    told = greedy_answers(policy, smol_tokenizer, [MetaPair(**{**p.__dict__, "user_info": stated[p.chosen]})
                                                   for p in implicit], 6)
    expected = {(p.user_info, p.prompt): (s, i) for p, s, i in zip(implicit, told, implied) if s != i}
    assert expected  # the stated preference changes the tiny policy's answer somewhere

    def stated_is_better(pair, answers):  # whatever the policy wrote under the stated preference scores higher
        return [float(a in told) for a in answers]

    made = stating.stated_pairs(tmp_path, policy, smol_tokenizer, pairs, stated_is_better, contexts=100,
                                max_new_tokens=6, batch_size=3, seed=0, progress=False)
    assert {(p.user_info, p.prompt): (p.chosen, p.rejected) for p in made} == {
        k: v for k, v in expected.items() if v[1] not in told and not degenerate(v[0])}  # judged apart, clean
    assert all(not p.explicit and p.user_info in BACKGROUNDS.values() for p in made)
    written = (tmp_path / SAMPLED_FILE).read_text()
    assert len(written.splitlines()) == len(made)
    monkeypatch.setattr(stating, "greedy_answers", lambda *a, **k: pytest.fail("a rerun wrote answers again"))
    again = stating.stated_pairs(tmp_path, policy, smol_tokenizer, pairs, stated_is_better, contexts=100,
                                 max_new_tokens=6, batch_size=3, seed=0, progress=False)
    assert again == made and (tmp_path / SAMPLED_FILE).read_text() == written


def test_a_stated_answer_is_chosen_only_where_it_is_better_clean_and_as_close_to_the_question():
    context = implied_pairs(1)[-1]

    def longer(pair, answers):
        return [float(len(a)) for a in answers]

    pick = stating._stated_over_implied
    made = pick(context, "a longer answer", "short", longer)
    assert (made.chosen, made.rejected, made.user_info) == ("a longer answer", "short", context.user_info)
    assert pick(context, "short", "a longer answer", longer) is None  # the judge prefers the background's answer
    assert pick(context, "same", "same", longer) is None and pick(context, "", "x", longer) is None
    assert pick(context, " ".join(["yes"] * 20), "no", longer) is None  # a loop is never chosen
    shares = {"a longer answer": 0.6, "short": 0.9}
    closeness = lambda pair, answers: [shares[a] for a in answers]  # noqa: E731
    assert pick(context, "a longer answer", "short", longer, closeness, 0.5) is not None
    assert pick(context, "a longer answer", "short", longer, closeness, 0.7) is None  # under the floor
    assert pick(context, "a longer answer", "short", longer, closeness, 0.5, chosen_as_close=True) is None


def test_train_policy_runs_dpo_on_stated_pairs_and_refuses_data_without_implicit_contexts(tmp_path, smol_tokenizer):
    data = write_toy_data(tmp_path / "data")  # explicit pairs only
    run, sft, dpo = configs(data, tmp_path / "run")
    dpo = DPOStage(**{**dpo.__dict__, "dpo_pairs": "stated", "dpo_sample_tokens": 6, "dpo_min_on_question": 0.0})
    with pytest.raises(PersonalignError, match="stated DPO pairs need a judge"):
        train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)

    def anything_else_is_better(pair, answers):  # the stated answer differs from the background's: it wins
        return [1.0, 0.0]

    with pytest.raises(PersonalignError, match="no implicit context gave a pair"):
        train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer,
                     pair_judge=anything_else_is_better)
    (data / "train.jsonl").write_text("".join(json.dumps(as_record(p)) + "\n" for p in implied_pairs(16)))
    summary = train_policy(configs(data, tmp_path / "run2")[0], sft, dpo, progress=False, model=tiny_llama(0),
                           tokenizer=smol_tokenizer, pair_judge=anything_else_is_better)
    made = [json.loads(line) for line in (tmp_path / "run2" / SAMPLED_FILE).read_text().splitlines()]
    assert made and all(p["user_info"] in BACKGROUNDS.values() for p in made)
    assert "eval_rewards/accuracies" in summary["dpo"] and (tmp_path / "run2" / "policy" / "policy.json").is_file()
