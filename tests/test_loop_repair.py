"""scripts/loop_repair.py: a context gives a DPO pair only where the policy's greedy answer fails, and the chosen
answer is the clean, on-question sample its dimension's judge scores highest."""

import sys
from pathlib import Path

import pytest
import torch

from personalign.catalog import lookup
from personalign.evaluation.judges.relevance import RelevanceJudge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import loop_repair  # noqa: E402  (a script, importable once its folder is on the path)

LOOP = "Owls are birds. Owls are birds. Owls are birds. Owls are birds. Owls are birds. Owls are birds."


def embed(texts):  # owl talk along one axis, anything else along the other
    return torch.tensor([[1.0, 0.0] if "wl" in t else [0.0, 1.0] for t in texts])


def answer(text, sample=None, prompt_id="p1", dim="concise"):
    return dict(prompt_id=prompt_id, prompt="Tell me about owls.", dim=dim, sample=sample, text=text, truncated=True)


def test_only_a_failing_greedy_answer_is_repaired_by_the_best_clean_sample_on_the_question():
    answers = [answer(LOOP), answer("Owls hunt at night and see well in the dark, so mice rarely escape them.", 0),
               answer("Owls hunt at night.", 1), answer(LOOP, 2), answer("Sure!", 3),
               answer("Owls are nocturnal raptors.", prompt_id="p2"), answer("Owls fly.", 0, prompt_id="p2")]
    [pair] = loop_repair.repair_pairs(answers, RelevanceJudge(embedder=embed))
    # concise: the shortest clean sample on the question wins; the loop and the off-question "Sure!" never do
    assert (pair.chosen, pair.rejected) == ("Owls hunt at night.", LOOP)
    assert pair.user_info == lookup("concise").text and pair.preference == "psoups:concise" and pair.explicit


def test_a_failing_answer_without_a_clean_sample_on_the_question_gives_no_pair():
    answers = [answer(LOOP), answer(LOOP, 0), answer("Sure, happy to help!", 1)]
    assert loop_repair.repair_pairs(answers, RelevanceJudge(embedder=embed)) == []


def test_a_directory_written_with_other_settings_is_refused(tmp_path):
    loop_repair.record_settings(tmp_path, dict(limit=150))
    with pytest.raises(SystemExit, match="other settings"):
        loop_repair.record_settings(tmp_path, dict(limit=600))
