"""The PersRM trainer on tiny models: it learns a preference-decided toy task, resumes exactly, and what it saves
guides the engine."""

import json

import pytest
import torch

from personalign.cli import main
from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest
from personalign.prompts import render_ids
from personalign.reward_model import PersonalizedRewardModel, load_saved
from personalign.training import trainer
from personalign.training.config import TrainConfig
from personalign.training.trainer import train_persrm
from tiny import tiny_llama

AGREE, DISAGREE = "Always agree enthusiastically.", "Always disagree bluntly."
TOPICS = ["cats", "rain", "trains", "bread", "music", "stars", "rivers", "chess", "maps", "tea", "snow", "bees"]


def write_toy_pairs(path, topics=TOPICS) -> None:
    """Each prompt twice, with opposite winners: only a model that reads the preference can rank both."""
    lines = []
    for topic in topics:
        prompt = f"Tell me about {topic}."
        yes, no = f"Yes, {topic} are great. Yes indeed.", f"No. {topic} are dull. No."
        lines.append({"preference": AGREE, "prompt": prompt, "chosen": yes, "rejected": no})
        lines.append({"preference": DISAGREE, "prompt": prompt, "chosen": no, "rejected": yes})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def toy_config(tmp_path, **overrides) -> TrainConfig:
    settings = dict(train=str(tmp_path / "pairs.jsonl"), out=str(tmp_path / "run"), valid_fraction=0.3,
                    stage1_steps=40, stage2_steps=4, batch_size=4, lr_stage1=1e-2, lr_stage2=1e-2, beta=1.0,
                    lora_r=4, lora_alpha=8, eval_every=20, save_every=10, log_every=10, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained_toy(tmp_path_factory, smol_tokenizer):
    tmp_path = tmp_path_factory.mktemp("toy")
    write_toy_pairs(tmp_path / "pairs.jsonl")
    config = toy_config(tmp_path)
    summary = train_persrm(config, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny",
                           progress=False)
    return tmp_path, config, summary


def test_loss_falls_and_held_out_accuracy_rises_on_a_preference_decided_task(trained_toy):
    tmp_path, _, summary = trained_toy
    before, after = summary["untrained"]["valid"], summary["trained"]["valid"]
    assert before["accuracy"] == 0.5  # the untrained PersRM is its backbone: every reward is 0, every pair a tie
    assert after["accuracy"] >= 0.9
    assert after["loss"] < before["loss"] - 0.3
    for preference in (AGREE, DISAGREE):  # both directions learned, so the preference is read
        assert after["per_preference"][preference]["accuracy"] >= 0.8
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [m["loss"] for m in metrics if m["split"] == "train" and m["stage"] == 1]
    assert train_losses[-1] < train_losses[0]
    assert {m["split"] for m in metrics} == {"train", "valid"}


def test_saved_persrm_loads_in_the_engine_and_changes_its_output(trained_toy, smol_tokenizer):
    tmp_path, _, _ = trained_toy
    base = tiny_llama(0)
    trained = load_saved(str(tmp_path / "run" / "persrm"), base)
    assert trained.has_adapter

    def answer(persrm):
        engine = Engine(base, smol_tokenizer, persrm, reward_form="released")
        request = GenerationRequest("Tell me about owls.", AGREE, method="pad", beta=1.0, max_new_tokens=8)
        return engine.generate([request])[0].token_ids

    assert answer(trained) != answer(PersonalizedRewardModel(base, "tiny"))


def test_resume_after_a_kill_reaches_the_same_weights_and_metrics(tmp_path, smol_tokenizer, monkeypatch):
    write_toy_pairs(tmp_path / "pairs.jsonl", TOPICS[6:])
    # log_every 3, save_every 2: the checkpoint at step 2 falls inside the window of steps 1-3 logged at step 3
    steps = dict(stage1_steps=5, stage2_steps=3, save_every=2, eval_every=2, log_every=3, lr_stage1=5e-3,
                 valid_fraction=0.5)
    whole = toy_config(tmp_path, out=str(tmp_path / "whole"), **steps)
    train_persrm(whole, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny", progress=False)

    killed = toy_config(tmp_path, out=str(tmp_path / "killed"), **steps)
    real_indices, calls = trainer.batch_indices, []

    def dies_at_step_four(*args, **kwargs):  # stage 1 step 4 (0-based 3): after the checkpoint at step 2
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_indices(*args, **kwargs)

    monkeypatch.setattr(trainer, "batch_indices", dies_at_step_four)
    with pytest.raises(KeyboardInterrupt):
        train_persrm(killed, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny", progress=False)
    monkeypatch.setattr(trainer, "batch_indices", real_indices)
    assert not (tmp_path / "killed" / "persrm").exists()
    train_persrm(killed, resume=True, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny",
                 progress=False)

    from safetensors.torch import load_file
    for name in ("head.safetensors", "adapter/persrm/adapter_model.safetensors"):
        a, b = load_file(tmp_path / "whole" / "persrm" / name), load_file(tmp_path / "killed" / "persrm" / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    head = load_file(tmp_path / "whole" / "persrm" / "head.safetensors")
    assert not torch.equal(head["weight"], torch.eye(head["weight"].shape[0])), "training changed nothing"
    lines = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    # every field but seconds_per_step, a wall-clock timing that no two runs share
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds_per_step"} for r in records]
    whole_lines, killed_lines = strip(lines("whole")), strip(lines("killed"))
    positions = lambda split: [(r["stage"], r["step"]) for r in whole_lines if r["split"] == split]
    assert positions("train") == [(1, 3), (1, 5), (2, 3)]
    assert positions("valid") == [(0, 0), (1, 2), (1, 4), (1, 5), (2, 2), (2, 3)]
    assert killed_lines == whole_lines  # same values, no step logged twice, none missing


def test_stage_two_trains_the_head_alone(tmp_path, smol_tokenizer):
    write_toy_pairs(tmp_path / "pairs.jsonl", TOPICS[6:])
    model = tiny_llama(0)
    config = toy_config(tmp_path, stage1_steps=0, stage2_steps=3, eval_every=100, valid_fraction=0.5)
    train_persrm(config, model=model, tokenizer=smol_tokenizer, backbone_name="tiny", progress=False)
    from safetensors.torch import load_file
    adapter = load_file(tmp_path / "run" / "persrm" / "adapter" / "persrm" / "adapter_model.safetensors")
    assert all(torch.count_nonzero(v) == 0 for k, v in adapter.items() if "lora_B" in k)  # LoRA B starts at 0
    head = load_file(tmp_path / "run" / "persrm" / "head.safetensors")
    assert not torch.equal(head["weight"], torch.eye(head["weight"].shape[0]))


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("", "no pairs (the file is empty)"),
    ('{"preference": "p", "prompt": "q", "chosen": "a"}\n', ':1: missing "rejected"'),
    ('{"preference": "p", "prompt": "q", "chosen": "a"}\n{"preference": "p", "prompt": "q", "chosen": "same", '
     '"rejected": "same"}\n', ":1:"),
    ('{"preference": "p", "prompt": "q", "chosen": "a", "rejected": "b"}\n{"preference": "p", "prompt": "q", '
     '"chosen": "same", "rejected": "same"}\n', ":2: \"chosen\" and \"rejected\" are identical"),
])
def test_bad_pairs_exit_2_with_the_line_and_write_nothing(capsys, tmp_path, content, message):
    (tmp_path / "pairs.jsonl").write_text(content)
    code, err = run_cli(capsys, "train-rm", "--train", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "run"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_unknown_hold_out_and_an_existing_run_are_errors(capsys, tmp_path, trained_toy):
    write_toy_pairs(tmp_path / "pairs.jsonl")
    code, err = run_cli(capsys, "train-rm", "--train", str(tmp_path / "pairs.jsonl"), "--out",
                        str(tmp_path / "run"), "--hold-out", "vegan")
    assert code == 2 and "vegan" in err and not (tmp_path / "run").exists()
    toy_dir, config, _ = trained_toy
    before = (toy_dir / "run" / "metrics.jsonl").read_text()
    code, err = run_cli(capsys, "train-rm", "--train", config.train, "--out", config.out)
    assert code == 2 and "--resume" in err
    code, err = run_cli(capsys, "train-rm", "--train", config.train, "--out", config.out, "--resume",
                        "--beta", "0.5")
    assert code == 2 and "beta" in err
    assert (toy_dir / "run" / "metrics.jsonl").read_text() == before  # nothing saved was touched


def test_hold_out_takes_a_file_of_preferences_that_may_contain_commas(tmp_path):
    from personalign.cli import build_parser
    from personalign.commands.train_rm import config_from_args

    listed = tmp_path / "held.txt"
    listed.write_text("Style: Detailed. Harmlessness: Balanced view, kind.\n\nfriendly\n")
    args = build_parser().parse_args(["train-rm", "--train", "pairs.jsonl", "--out", str(tmp_path / "run"),
                                      "--hold-out", f"unfriendly,{listed}", "--hold-out", "friendly"])
    assert config_from_args(args).hold_out == ("unfriendly", "Style: Detailed. Harmlessness: Balanced view, kind.",
                                               "friendly")


@pytest.mark.parametrize("flag, value", [("--head-dropout", "1"), ("--beta", "0"), ("--stage1-steps", "-1")])
def test_bad_settings_exit_2_before_the_run_directory_exists(capsys, tmp_path, flag, value):
    write_toy_pairs(tmp_path / "pairs.jsonl")
    code, err = run_cli(capsys, "train-rm", "--train", str(tmp_path / "pairs.jsonl"), "--out",
                        str(tmp_path / "run"), flag, value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_train_only_pairs_join_training_but_never_leak_held_out_prompts_or_preferences(tmp_path):
    write_toy_pairs(tmp_path / "pairs.jsonl")
    config = toy_config(tmp_path, hold_out=(DISAGREE,))
    plain = trainer.read_pair_groups(config)
    extra = [{"preference": pref, "prompt": f"Tell me about {topic}.", "chosen": "Fine.", "rejected": "Fine fine fine."}
             for topic in TOPICS for pref in (AGREE, DISAGREE)]
    half = len(extra) // 2  # two files, as --train-only loop_pairs.jsonl,offtopic_pairs.jsonl gives them
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(line) + "\n" for line in extra[:half]))
    (tmp_path / "more.jsonl").write_text("".join(json.dumps(line) + "\n" for line in extra[half:]))
    groups = trainer.read_pair_groups(toy_config(tmp_path, hold_out=(DISAGREE,), train_only=(
        str(tmp_path / "extra.jsonl"), str(tmp_path / "more.jsonl"))))
    added = groups["train"][len(plain["train"]):]
    assert groups["valid"] == plain["valid"] and groups["unseen"] == plain["unseen"]
    valid_prompts = {p.prompt for p in plain["valid"]}
    assert valid_prompts and added
    assert all(p.preference == AGREE and p.prompt not in valid_prompts for p in added)
    assert len(added) == len(TOPICS) - len(valid_prompts)


def test_bad_train_only_pairs_exit_2_with_the_line(capsys, tmp_path):
    write_toy_pairs(tmp_path / "pairs.jsonl")
    (tmp_path / "extra.jsonl").write_text('{"preference": "a", "prompt": "b", "chosen": "c"}\n')
    code, err = run_cli(capsys, "train-rm", "--train", str(tmp_path / "pairs.jsonl"), "--train-only",
                        str(tmp_path / "extra.jsonl"), "--out", str(tmp_path / "run"))
    assert code == 2 and "extra.jsonl:1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_without_preference_reference_reads_the_bare_prompt_and_still_learns(tmp_path, smol_tokenizer):
    write_toy_pairs(tmp_path / "pairs.jsonl")
    config = toy_config(tmp_path, reference="without-preference", stage2_steps=0)
    groups = trainer.read_pair_groups(config)
    first, encoded = groups["train"][0], trainer.encode_groups(groups, config, smol_tokenizer).train[0]
    assert encoded.reference_prompt == tuple(render_ids(smol_tokenizer, first.prompt, None))
    assert encoded.policy_prompt == tuple(render_ids(smol_tokenizer, first.prompt, first.preference))
    summary = train_persrm(config, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny",
                           progress=False)
    assert summary["untrained"]["valid"]["accuracy"] < 0.9  # not a tie any more, but not yet the task
    assert summary["trained"]["valid"]["accuracy"] >= 0.9


def test_a_runs_saved_settings_give_back_its_config(tmp_path):
    config = toy_config(tmp_path, hold_out=(DISAGREE, AGREE), reference="without-preference", eval_limit=7)
    others = dict(out=config.out, eval_every=config.eval_every, eval_limit=7, save_every=config.save_every,
                  log_every=config.log_every, device=config.device)
    saved = json.loads(json.dumps(config.outcome_settings()))
    assert TrainConfig.from_outcome_settings(saved, **others) == config


def test_a_whole_answer_is_scored_with_its_end_of_turn_and_a_cut_one_without(smol_tokenizer):
    from personalign.data.pairs import Pair
    from personalign.training.features import encode_pairs
    short, long = "Paris is the capital and the largest city of France.", "The capital of France is Paris, a city on the river Seine, and"
    ids = lambda text: tuple(smol_tokenizer(text, add_special_tokens=False)["input_ids"])
    eos = smol_tokenizer.eos_token_id
    [whole], _ = encode_pairs([Pair("concise", "Capital of France?", short, long, chosen_ends=True)], smol_tokenizer,
                              2048, True)
    assert whole.chosen == ids(short) + (eos,) and whole.rejected == ids(long)
    [flipped], _ = encode_pairs([Pair("informative", "Capital of France?", long, short, rejected_ends=True)],
                                smol_tokenizer, 2048, True)
    assert flipped.chosen == ids(long) and flipped.rejected == ids(short) + (eos,)
    # cut at --max-length, an answer is no longer whole: no end of turn after its last kept token
    room = len(ids(short)) - 1
    [cut], _ = encode_pairs([Pair("concise", "Capital of France?", short, long, chosen_ends=True)], smol_tokenizer,
                            len(whole.policy_prompt) + room, True)
    assert cut.chosen == ids(short)[:room]


def test_init_goes_on_from_a_saved_persrm_and_refuses_another_shape(capsys, tmp_path, trained_toy, smol_tokenizer):
    toy_dir, config, summary = trained_toy
    saved = str(toy_dir / "run" / "persrm")
    # same pairs and seed, so the same held-out split: the run starts where the saved PersRM ended
    again = toy_config(tmp_path, train=config.train, init=saved, stage1_steps=1, stage2_steps=0, lr_stage1=1e-12)
    start = train_persrm(again, model=tiny_llama(0), tokenizer=smol_tokenizer, backbone_name="tiny",
                         progress=False)["untrained"]["valid"]
    assert start["accuracy"] == summary["trained"]["valid"]["accuracy"] >= 0.9
    assert start["loss"] == pytest.approx(summary["trained"]["valid"]["loss"], rel=1e-4)
    code, err = run_cli(capsys, "train-rm", "--train", config.train, "--out", str(tmp_path / "other"),
                        "--init", saved, "--lora-r", "8")
    assert code == 2 and "rank 4" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()
