"""MetaAlign's policy trainer on a toy task where the meta-prompt alone decides the answer: SFT and DPO losses fall,
a run killed mid-stage and resumed ends where an uninterrupted one does, and bad directories are refused."""

import json

import pytest
import torch
from safetensors.torch import load_file

from personalign.cli import main
from personalign.data.metaalign import MetaPair, as_record, sft_examples
from personalign.errors import PersonalignError
from personalign.meta_prompt import MetaPrompt, has_system_role, render_meta_ids
from personalign.training import policy as policy_module
from personalign.training.policy import train_policy
from personalign.training.policy_config import DPOStage, PolicyConfig, SFTStage
from tiny import tiny_llama

FRUIT = {"Answer with the word apple.": "apple", "Answer with the word banana.": "banana"}
TIMINGS = ("runtime", "per_second", "per_step")  # wall-clock fields of a log: never equal between two runs
# TRL's count of tokens seen is kept by the trainer object, not in its checkpoints: a resumed run counts from 0
NOT_RESUMED = TIMINGS + ("num_tokens",)


def toy_pairs(n: int) -> list[MetaPair]:
    """The same two answers in opposite orders under the two User Infos, for n questions."""
    pairs = []
    for i in range(n):
        for user_info, word in FRUIT.items():
            other = next(w for w in FRUIT.values() if w != word)
            pairs.append(MetaPair("toy:" + word, "You are an AI assistant.", user_info, f"Question {i}?", word, other,
                                  "diverse", True))
    return pairs


def write_toy_data(directory):
    """A `data metaalign` directory of toy pairs: 16 questions to train on, 3 held out."""
    directory.mkdir()
    for split, pairs in (("train", toy_pairs(16)), ("valid", toy_pairs(3))):
        (directory / f"{split}.jsonl").write_text("".join(json.dumps(as_record(p)) + "\n" for p in pairs))
        (directory / f"sft_{split}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in sft_examples(pairs)))
    return directory


@pytest.fixture
def data(tmp_path):
    return write_toy_data(tmp_path / "data")


def configs(data, out, recipe="sft-dpo", **run):
    run = {"lora_r": 4, **run}
    return (PolicyConfig(data=str(data), out=str(out), recipe=recipe, batch_size=4, max_length=96,
                         save_every=2, log_every=2, device="cpu", mixed_precision="no", **run),
            SFTStage(sft_steps=8, sft_lr=5e-3, sft_eval_every=4), DPOStage(dpo_steps=8, dpo_lr=5e-3, dpo_eval_every=4))


def metrics(out):
    return [{k: v for k, v in json.loads(line).items() if not k.endswith(NOT_RESUMED)}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def adapter(out):
    return load_file(out / "policy" / "adapter" / "adapter_model.safetensors")


def test_sft_and_dpo_learn_what_the_meta_prompt_decides(data, tmp_path, smol_tokenizer):
    out = tmp_path / "run"
    summary = train_policy(*configs(data, out), progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    lines = metrics(out)
    for stage in ("sft", "dpo"):
        losses = [line["loss"] for line in lines if line["stage"] == stage and "loss" in line]
        assert losses[-1] < losses[0], (stage, losses)
    evaluations = [line for line in lines if line["stage"] == "dpo" and "eval_rewards/margins" in line]
    assert evaluations[-1]["eval_rewards/margins"] > 0
    assert summary["dpo"]["eval_rewards/margins"] == evaluations[-1]["eval_rewards/margins"]
    policy = json.loads((out / "policy" / "policy.json").read_text())
    assert policy["format"] == "personalign-metaalign" and policy["recipe"] == "sft-dpo"
    assert adapter(out)  # the policy is one adapter over the base


@pytest.mark.parametrize("stage", ["sft", "dpo"])  # SFT's batches are grouped by length from a random order
def test_a_killed_run_resumes_to_the_same_policy_and_metrics(data, tmp_path, smol_tokenizer, monkeypatch, stage):
    whole = tmp_path / "whole"
    train_policy(*configs(data, whole), progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    killed = tmp_path / "killed"
    log = policy_module._MetricsLog.on_log

    def kill_at_step_6(self, args, state, control, logs=None, **kwargs):
        log(self, args, state, control, logs, **kwargs)
        if self.stage == stage and state.global_step == 6:
            raise KeyboardInterrupt  # before the checkpoint of step 6: the run resumes from step 4's

    monkeypatch.setattr(policy_module._MetricsLog, "on_log", kill_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_policy(*configs(data, killed), progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    monkeypatch.setattr(policy_module._MetricsLog, "on_log", log)
    assert not (killed / "policy").exists()
    with pytest.raises(PersonalignError, match="pass --resume"):
        train_policy(*configs(data, killed), progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    with pytest.raises(PersonalignError, match="other settings .* seed"):
        train_policy(*configs(data, killed, seed=1), resume=True, progress=False, model=tiny_llama(0),
                     tokenizer=smol_tokenizer)
    train_policy(*configs(data, killed), resume=True, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    assert metrics(killed) == metrics(whole)
    expected, got = adapter(whole), adapter(killed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_sft_init_goes_on_training_a_saved_policys_adapter(data, tmp_path, smol_tokenizer):
    first = tmp_path / "first"
    run, sft, dpo = configs(data, first, recipe="sft")
    train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    barely = SFTStage(sft_steps=2, sft_lr=1e-12, sft_eval_every=2, sft_init=str(first / "policy"))
    for name, init in (("fresh", None), ("continued", barely.sft_init)):
        run, _, dpo = configs(data, tmp_path / name, recipe="sft")
        barely.sft_init = init
        train_policy(run, barely, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    trained, fresh, continued = adapter(first), adapter(tmp_path / "fresh"), adapter(tmp_path / "continued")
    lora_b = [k for k in trained if "lora_B" in k]
    assert lora_b and all(torch.allclose(continued[k], trained[k]) for k in trained)
    assert not any(torch.allclose(fresh[k], trained[k]) for k in lora_b)  # a new adapter's B starts at zero
    run, _, dpo = configs(data, tmp_path / "other-rank", recipe="sft", lora_r=8)
    with pytest.raises(PersonalignError, match="rank 4 on k_proj, o_proj, q_proj, v_proj; pass its --lora-r"):
        train_policy(run, barely, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    assert not (tmp_path / "other-rank").exists()


def test_dpo_straight_from_a_saved_policy_starts_from_its_adapter(data, tmp_path, smol_tokenizer):
    first = tmp_path / "first"
    run, sft, dpo = configs(data, first, recipe="sft")
    train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    run, _, dpo = configs(data, tmp_path / "dpo")
    skip = SFTStage(sft_steps=0, sft_init=str(first / "policy"))
    train_policy(run, skip, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    saved = adapter(first)
    start = load_file(tmp_path / "dpo" / "sft" / "adapter" / "adapter_model.safetensors")
    assert start.keys() == saved.keys() and all(torch.equal(start[k], saved[k]) for k in saved)
    assert {line["stage"] for line in metrics(tmp_path / "dpo")} == {"dpo"}  # no SFT step ran
    trained = adapter(tmp_path / "dpo")
    assert not all(torch.equal(trained[k], saved[k]) for k in saved)


def test_bad_directories_are_one_line_and_exit_2(tmp_path, capsys, data):
    assert main(["train-policy", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "SFT file not found" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["train-policy", "--data", str(data), "--out", str(tmp_path / "o"), "--sft-steps", "-1"]) == 2
    assert "sft_steps must be >= 0" in capsys.readouterr().err
    assert main(["train-policy", "--data", str(data), "--out", str(tmp_path / "o"), "--sft-steps", "0"]) == 2
    assert "give --sft-init and recipe sft-dpo" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["train-policy", "--data", str(data), "--out", str(tmp_path / "o"), "--save-every", "5",
                 "--log-every", "2"]) == 2
    assert "must be a multiple of log_every" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["train-policy", "--data", str(data), "--out", str(tmp_path / "o"), "--lora-dropout", "1"]) == 2
    assert "lora_dropout must be < 1" in capsys.readouterr().err and not (tmp_path / "o").exists()


def longer_is_better(pair, answers):
    return [float(len(answer)) for answer in answers]


def test_sampled_dpo_pairs_are_the_sft_policys_judged_answers_and_survive_a_kill(data, tmp_path, smol_tokenizer,
                                                                               monkeypatch):
    from personalign.training import sampled_pairs as sampling

    out = tmp_path / "run"
    run, sft, dpo = configs(data, out)
    dpo = DPOStage(**{**dpo.__dict__, "dpo_pairs": "sampled", "dpo_contexts": 6, "dpo_samples": 3,
                      "dpo_sample_tokens": 6, "dpo_temperature": 1.5})
    with pytest.raises(PersonalignError, match="need a judge"):
        train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer)
    with pytest.raises(PersonalignError, match="need an on-question check"):
        train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer,
                     pair_judge=longer_is_better)
    left = set()

    def longest_leaves(pair, answers):  # the longest sample of each context "leaves the question"
        left.add(max(answers, key=len))
        return [float(answer != max(answers, key=len)) for answer in answers]

    log = policy_module._MetricsLog.on_log

    def kill_in_dpo(self, args, state, control, logs=None, **kwargs):
        log(self, args, state, control, logs, **kwargs)
        if self.stage == "dpo" and state.global_step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(policy_module._MetricsLog, "on_log", kill_in_dpo)
    with pytest.raises(KeyboardInterrupt):
        train_policy(run, sft, dpo, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer,
                     pair_judge=longer_is_better, closeness=longest_leaves)
    monkeypatch.setattr(policy_module._MetricsLog, "on_log", log)
    sampled = (out / sampling.SAMPLED_FILE).read_text()
    pairs = [json.loads(line) for line in sampled.splitlines()]
    assert 0 < len(pairs) <= 6
    questions = {f"Question {i}?" for i in range(16)}
    for pair in pairs:
        assert len(pair["chosen"]) > len(pair["rejected"]) and pair["prompt"] in questions
        assert pair["user_info"] in FRUIT  # the context's own meta-prompt
        assert pair["chosen"] not in left  # unguarded, the longest would be chosen every time
    monkeypatch.setattr(sampling, "_sample", lambda *a, **k: pytest.fail("a resumed run sampled again"))
    train_policy(run, sft, dpo, resume=True, progress=False, model=tiny_llama(0), tokenizer=smol_tokenizer,
                 pair_judge=longer_is_better, closeness=longest_leaves)
    assert (out / sampling.SAMPLED_FILE).read_text() == sampled and (out / "policy" / "policy.json").is_file()


def test_greedy_rejection_pairs_the_best_sample_against_the_policys_own_greedy_answer(tmp_path, smol_tokenizer):
    from personalign.training import sampled_pairs as sampling

    policy = tiny_llama(0).eval()
    contexts = toy_pairs(4)
    modes = sampling.greedy_answers(policy, smol_tokenizer, contexts, 6)
    assert modes == sampling.greedy_answers(policy, smol_tokenizer, contexts, 6)  # greedy: the same answer every time
    pairs = sampling.sampled_pairs(tmp_path, policy, smol_tokenizer, contexts, longer_is_better, contexts=8,
                                   samples=3, max_new_tokens=6, temperature=1.5, batch_size=4, seed=0,
                                   rejected="greedy", progress=False)
    mode_of = {(c.user_info, c.prompt): m for c, m in zip(contexts, modes)}
    assert pairs and all(p.rejected == mode_of[(p.user_info, p.prompt)] for p in pairs)
    assert all(len(p.chosen) > len(p.rejected) for p in pairs)  # only where the best sample beats the mode
    # the greedy answer is rejected even where it is the worst of all, and never made chosen where it is the best
    pick = sampling._best_and_worst
    assert pick(contexts[0], ["ab", "abcd"], longer_is_better, mode="a").rejected == "a"
    assert pick(contexts[0], ["ab", "abcd"], longer_is_better, mode="abc").chosen == "abcd"
    assert pick(contexts[0], ["ab", "abc"], longer_is_better, mode="abcdef") is None
    assert pick(contexts[0], ["ab", "abc"], longer_is_better, mode="") is None


def cheer_is_best(pair, answers):
    return [2.0 if "Awesome" in a else 1.0 if "half" in a else 0.0 for a in answers]


def test_a_sampled_answer_stays_on_the_question_when_as_close_to_the_prompt_as_a_share_of_the_datas_answer():
    import torch

    from personalign.data.metaalign import MetaPair
    from personalign.evaluation.judges.relevance import RelevanceJudge
    from personalign.evaluation.meta_pair_judge import meta_pair_closeness
    from personalign.training import sampled_pairs as sampling

    def embed(texts):  # fruit talk along one axis, anything else along the other, halfway between for "half"
        rows = [[1.0, 0.0] if "fruit" in t else [0.6, 0.8] if "half" in t else [0.0, 1.0] for t in texts]
        return torch.tensor(rows)

    pair = MetaPair("psoups:friendly", "You are an AI assistant.", "friendly",
                    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": "Which fruit is sweetest?"}],
                    "Mango, a sweet fruit.", "No.", "diverse", True)
    answers = ["Ripe fruit like mango!", "Awesome, happy to help, have a great day!", "half and half"]
    shares = meta_pair_closeness(RelevanceJudge(embedder=embed))(pair, answers)
    assert shares == pytest.approx([1.0, 0.0, 0.6])  # against the data's answer's 1.0
    pick = sampling._best_and_worst
    # the judge likes the off-question cheer best: it is chosen only unguarded
    assert pick(pair, answers, cheer_is_best, None).chosen == answers[1]
    assert pick(pair, answers, cheer_is_best, lambda *_: shares, 0.5).chosen == answers[2]
    # at 0.7 only the mango answer stays on the question, and it is the judge's worst: no pair
    assert pick(pair, answers, cheer_is_best, lambda *_: shares, 0.7) is None


def test_sft_rows_read_the_inference_rendering_and_end_a_turn_only_after_a_whole_answer(smol_tokenizer):
    example = sft_examples(toy_pairs(1))[0]
    meta = MetaPrompt(example["system_info"], example["user_info"])
    opening = render_meta_ids(smol_tokenizer, example["prompt"], meta)
    for truncated in (False, True):
        row = policy_module._sft_row({**example, "response": "Apples are", "truncated": truncated}, smol_tokenizer,
                                     has_system_role(smol_tokenizer))
        ids, mask = row["input_ids"], row["completion_mask"]
        assert ids[:len(opening)] == opening and mask == [0] * len(opening) + [1] * (len(ids) - len(opening))
        answer = smol_tokenizer.decode(ids[len(opening):])
        # a whole answer ends the turn as the chat template does; a cut one just stops, so the policy learns to go on
        assert answer == ("Apples are" if truncated else "Apples are<|im_end|>\n")


@pytest.mark.parametrize("bf16_faster", [True, False])
def test_auto_precision_on_a_cpu_follows_what_the_cpu_does_faster(monkeypatch, bf16_faster):
    """On some AVX2 CPUs bf16 autocast made SFT 30 times slower than fp32, on others 1.4 times faster: ask the CPU."""
    assert isinstance(policy_module._cpu_bf16_is_faster(), bool)
    monkeypatch.setattr(policy_module, "_cpu_bf16_is_faster", lambda: bf16_faster)
    run = PolicyConfig(data="d", out="o", device="cpu")
    assert policy_module._precision(run) == {"bf16": bf16_faster, "fp16": False}
    for chosen in ("no", "bf16"):  # a precision given is used as it is
        run.mixed_precision = chosen
        assert policy_module._precision(run) == {"bf16": chosen == "bf16", "fp16": False}


def test_a_chosen_answer_as_close_as_the_rejected_one_keeps_pairs_from_teaching_to_leave_the_question():
    from personalign.training import sampled_pairs as sampling

    context = toy_pairs(1)[0]
    # the judge prefers longer answers; the longest wanders further from the question than the greedy one
    answers, mode = ["long answer that wanders", "mid answer"], "short"
    shares = {"long answer that wanders": 0.6, "mid answer": 0.9, "short": 0.8}

    def closeness(pair, texts):
        return [shares[t] for t in texts]

    pick = sampling._best_and_worst
    assert pick(context, answers, longer_is_better, closeness, 0.5, mode=mode).chosen == answers[0]
    guarded = pick(context, answers, longer_is_better, closeness, 0.5, chosen_as_close=True, mode=mode)
    assert (guarded.chosen, guarded.rejected) == ("mid answer", "short")
    shares["mid answer"] = 0.7  # no sample as close as the greedy answer: no pair
    assert pick(context, answers, longer_is_better, closeness, 0.5, chosen_as_close=True, mode=mode) is None
