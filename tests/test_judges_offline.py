"""The offline judge ranks hand-written texts the way a reader would, offline and without warnings."""

import socket
import warnings

import nltk
import pytest

from personalign.errors import PersonalignError
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.registry import load_judge

CHILD = ("Plants are like tiny cooks. They use sun to make food. They drink water with their roots. "
         "Then they grow big and green!")
ACADEMIC = ("Photosynthetic carbon fixation proceeds via ribulose-1,5-bisphosphate carboxylase/oxygenase, whose "
            "oxygenation side-reaction necessitates photorespiratory metabolism, thereby attenuating net "
            "assimilation under elevated thermal conditions and diminished intercellular partial pressures.")
SHORT = "Paris."
LONG = ("The capital of France is Paris, which has been the political and cultural centre of the country since "
        "the Middle Ages. It sits on the Seine, hosts the national government and parliament, and with its "
        "suburbs is home to more than twelve million people.")
WARM = "Hey there, friend! Great question 😊 I'd be so happy to help, you're going to love this!"
RUDE = "Ugh, what a stupid question. Figure it out yourself, I'm not wasting my time on your useless problems."

# (dimension, the text that should score higher, the text that should score lower)
ORDERS = [
    ("elementary", CHILD, ACADEMIC), ("expert", ACADEMIC, CHILD),
    ("concise", SHORT, LONG), ("informative", LONG, SHORT),
    ("friendly", WARM, RUDE), ("unfriendly", RUDE, WARM),
]


@pytest.fixture(scope="module")
def judge():
    return OfflineJudge()


@pytest.mark.parametrize("dimension,high,low", ORDERS)
def test_scores_rank_hand_written_texts(judge, dimension, high, low):
    better, worse = judge.score(dimension, ["q", "q"], [high, low])
    assert better > worse


@pytest.mark.parametrize("dimension,high,low", ORDERS)
def test_compare_gives_one_zero_and_half(judge, dimension, high, low):
    assert judge.compare(dimension, ["q"] * 3, [high, low, high], [low, high, high]) == [1.0, 0.0, 0.5]


def test_measures_have_documented_scales(judge):
    assert judge.score("concise", ["q"], ["one two three, four!"]) == [-4.0]
    assert judge.score("informative", ["q"], ["Yes yes YES, yes. No."]) == [2.0]  # repetition adds nothing
    assert judge.score("friendly", ["q"], ["The train leaves at noon."]) == [0.0]  # neutral
    friendly, = judge.score("friendly", ["q"], [WARM])
    assert 0.5 < friendly <= 1.0
    assert judge.score("unfriendly", ["q"], [WARM]) == [-friendly]
    expert, = judge.score("expert", ["q"], [ACADEMIC])
    assert expert > 16  # beyond a college degree
    assert judge.score("elementary", ["q"], [ACADEMIC]) == [-expert]


def test_empty_responses_get_natural_values(judge):
    for dimension in judge.dimensions():
        assert judge.score(dimension, ["q", "q"], ["", "   "]) == [0.0, 0.0]


def test_no_network_and_no_warnings(judge, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the offline judge tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(nltk, "download", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # words never scored before in this process, so textstat's caches cannot answer for the dictionary
        scores = OfflineJudge().score("expert", ["q"], ["Quixotic zephyrs bewilder unsuspecting lexicographers."])
    assert scores[0] > 5


def test_unknown_dimension_and_mismatched_lengths(judge):
    assert judge.dimensions() == ("elementary", "expert", "concise", "informative", "friendly", "unfriendly")
    with pytest.raises(PersonalignError, match="cannot judge 'sassy'"):
        judge.score("sassy", ["q"], ["text"])
    with pytest.raises(PersonalignError, match="2 prompts but 1 responses"):
        judge.score("concise", ["q", "q"], ["text"])


def test_registry_loads_it():
    assert isinstance(load_judge("offline"), OfflineJudge)
