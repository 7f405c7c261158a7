"""The PersRM's summed reward of whole answers under each dimension (training/answer_rewards.py), the features a
server learns users' weights from (`serve --feedback-features`)."""

from argparse import Namespace

import pytest
import torch

from personalign.cli import main
from personalign.commands.serve import learner_for, persrm_features
from personalign.data.pairs import Pair
from personalign.errors import PersonalignError
from personalign.reward_model import PersonalizedRewardModel
from personalign.serving.config import ServerConfig
from personalign.training.answer_rewards import SummedRewardFeatures
from personalign.training.dpo import SequenceScorer, dpo_terms
from personalign.training.features import encode_pairs, pair_rows
from test_pad_engine import perturbed_head
from tiny import tiny_llama

DIMS = ("concise", "friendly", "expert")
ANSWERS = ["Paris.", "The capital of France is Paris, on the Seine.", "Hey friend, it's Paris!"]


def test_an_answers_features_are_the_reward_the_persrm_ranks_pairs_with(smol_tokenizer):
    persrm = perturbed_head(PersonalizedRewardModel(tiny_llama(1)))
    features = SummedRewardFeatures(persrm, smol_tokenizer, DIMS)("What is the capital of France?", ANSWERS)
    assert len(features) == len(ANSWERS) and all(len(row) == len(DIMS) for row in features)
    for d, name in enumerate(DIMS):  # the training objective's margin of a pair, under the same preference
        pair = Pair(name, "What is the capital of France?", ANSWERS[1], ANSWERS[2])
        encoded, _ = encode_pairs([pair], smol_tokenizer, 2048, reference_reads_preference=True)
        policy, reference = pair_rows(encoded, smol_tokenizer.eos_token_id)
        scorer = SequenceScorer(persrm)
        with torch.no_grad():
            margin = dpo_terms(scorer(policy), scorer(reference, reference=True), beta=1.0)["margin"].item()
        assert margin == pytest.approx(features[1][d] - features[2][d], abs=1e-4)
    by_dimension = list(zip(*features))
    assert by_dimension[0] != by_dimension[1]  # the preference text changes the reward


def test_an_untrained_persrm_is_refused_as_features(smol_tokenizer):
    with pytest.raises(PersonalignError, match="untrained PersRM"):
        SummedRewardFeatures(PersonalizedRewardModel(tiny_llama(1)), smol_tokenizer, DIMS)


def test_the_server_learns_from_the_persrm_when_it_is_trained(tiny_model_dir, tmp_path):
    args = Namespace(base=tiny_model_dir, persrm=None, device=None, dtype=None)
    # auto: an untrained PersRM scores nothing, so the offline judge's scores
    assert learner_for(ServerConfig(), args, persrm_untrained=True).features == "offline"
    saved = tmp_path / "persrm"
    persrm = PersonalizedRewardModel(tiny_llama(1), tiny_model_dir)
    persrm.add_lora()
    perturbed_head(persrm).save_pretrained(saved)
    learner = learner_for(ServerConfig(feedback_features="persrm"), Namespace(**{**vars(args), "persrm":
                                                                                           str(saved)}), False)
    assert learner.features == "persrm" and isinstance(learner.featurize, SummedRewardFeatures)
    direct = persrm_features(str(saved), tiny_model_dir, learner.dimensions)("Hi", ANSWERS[:2])
    assert learner.featurize("Hi", ANSWERS[:2]) == direct and len(direct[0]) == 6
    assert learner_for(ServerConfig(feedback_features="offline"), args, False).features == "offline"


def test_persrm_features_without_a_trained_persrm_exit_2_before_loading(capsys):
    assert main(["serve", "--persrm", "untrained", "--feedback-features", "persrm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--feedback-features offline" in err
    with pytest.raises(PersonalignError, match="unknown feedback features"):
        ServerConfig(feedback_features="judge")
