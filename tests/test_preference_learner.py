"""Weights learned from feedback (serving/preference_learner.py): the Bradley-Terry fit recovers hidden weights,
the prior holds where there is no evidence, and a server with profiles decodes with what a user's choices say."""

import httpx
import numpy as np

from live_server import live_server
from personalign.commands.serve import offline_learner
from personalign.serving.preference_learner import LearnedWeights, PreferenceLearner, bradley_terry
from personalign.serving.profiles import Feedback, ProfileStore, Stated
from test_server import CHAT, new_engine


def test_the_fit_recovers_hidden_weights_from_noisy_choices():
    rng = np.random.default_rng(0)
    hidden = np.array([2.0, -1.0, 0.5, 0.0])
    deltas = rng.normal(size=(600, 4))
    wins = (rng.random(600) < 1 / (1 + np.exp(-deltas @ hidden))).astype(float)
    w = bradley_terry(deltas, wins, np.zeros(4), l2=0.1)
    assert np.dot(w, hidden) / np.linalg.norm(w) / np.linalg.norm(hidden) > 0.97
    assert np.allclose(bradley_terry(deltas[:0], wins[:0], np.ones(4), 1.0), np.ones(4))  # no evidence: the prior


def length_learner():
    """Two features: words (informative) and minus words (concise)."""
    return PreferenceLearner(("concise", "informative"), lambda prompt, answers: [[-len(a.split()), len(a.split())]
                                                                                  for a in answers])


def test_choices_ties_and_ratings_move_the_weights_their_way():
    learner = length_learner()
    short, long = "Yes.", "Yes, and here is a much longer answer with many words in it."
    prefers_short = [(i, Feedback("pair", f"q{i}", short, long, "a")) for i in range(6)]
    learned = learner.fit(prefers_short)
    assert learned.weights["concise"] > learned.weights["informative"] and learned.choices == 6
    assert learned.as_dims() == {"concise": 1.0}
    rated = learner.fit([(10 + i, Feedback("rating", "q", long, None, "up")) for i in range(3)] +
                        [(20 + i, Feedback("rating", "q", short, None, "down")) for i in range(3)])
    assert rated.as_dims() == {"informative": 1.0}
    tied = learner.fit([(30, Feedback("pair", "q", short, long, "tie"))], prior={"concise": 0.3, "informative": 0.7})
    gap = tied.weights["informative"] - tied.weights["concise"]
    assert 0 < gap < 0.4  # a tie says the user is indifferent along this difference: the prior's gap narrows


def test_the_decoded_mix_nets_each_axis_and_keeps_other_dimensions_positive_part():
    learned = LearnedWeights({"elementary": 0.5, "expert": 0.2, "concise": 0.1, "informative": -0.3, "friendly": 0.2,
                              "unfriendly": 0.2, "humor": 0.2, "formal": -0.1}, choices=3)
    assert learned.as_dims() == {"elementary": round(0.3 / 0.9, 4), "concise": round(0.4 / 0.9, 4),
                                 "humor": round(0.2 / 0.9, 4)}  # friendly and unfriendly cancel
    assert LearnedWeights({"concise": 0.4, "informative": 0.4}, choices=1).as_dims() is None


def words_and_marks_learner():
    """Two independent features: words, and exclamation marks."""
    return PreferenceLearner(("informative", "friendly"), lambda prompt, answers: [[len(a.split()), a.count("!")]
                                                                                  for a in answers])


def test_the_next_pair_asked_is_the_one_whose_outcome_would_teach_most():
    learner = words_and_marks_learner()
    longer_wins = [(i, Feedback("pair", f"q{i}", "Yes, and a few more words here.", "Yes.", "a")) for i in range(8)]
    learned = learner.fit(longer_wins + [(8, Feedback("pair", "q8", "Ok!", "Ok.", "tie"))])  # words settled, not marks
    answers = ["Fine.", "Fine.", "Fine!", "A much longer answer with many more words in it."]
    i, j, p = learner.suggest(learned, "q", answers)
    # not the identical pair (p = 1/2 exactly, but it teaches nothing), nor one that differs in words alone, the
    # direction eight choices have settled: one whose answers differ in marks, which one tie has barely touched
    assert 2 in (i, j) and 0.05 < p < 0.95
    words_only = learner.fit(longer_wins)  # marks have never varied: still a direction worth asking about
    assert 2 in learner.suggest(words_only, "q", answers)[:2]
    fresh = learner.fit([])  # no feedback yet: the prior's uncertainty, the same along each direction
    assert learner.suggest(fresh, "q", answers)[:2] != (0, 1)
    assert fresh.covariance is None and learned.covariance is not None


def test_a_users_choices_become_the_mix_their_requests_decode_with(models, tmp_path):
    store = ProfileStore(tmp_path / "profiles.db")
    key = store.add_user("alice")
    store.set_stated("alice", Stated("expert", None, None, "prompt"))  # the learned mix keeps her saved method
    headers = {"Authorization": f"Bearer {key}"}
    verbose = "Certainly! Here is a long, detailed and thorough explanation with many words, examples and caveats."
    # a generous timeout: the first feedback loads the offline judge's dictionaries, slow on a busy machine
    with live_server(new_engine(models), store=store, learner=offline_learner()) as (url, _), \
            httpx.Client(timeout=60) as http:
        for i in range(8):
            answer = http.post(url + "/v1/feedback", headers=headers,
                                json={"prompt": f"Question {i}?", "answers": [verbose, "Short answer."],
                                      "choice": "b"}).json()
        learned = answer["learned"]
        assert learned["choices"] == 8 and learned["weights"]["concise"] > learned["weights"]["informative"]
        assert http.get(url + "/v1/users/me/profile", headers=headers).json()["learned"] == learned
        chat = http.post(url + CHAT, headers=headers, json={"messages": [{"role": "user", "content": "Hi"}],
                                                              "max_tokens": 4, "temperature": 0}).json()
        mix = ",".join(f"{name}={weight:g}" for name, weight in learned["dims"].items())
        assert chat["personalign"]["preference"] in (mix, next(iter(learned["dims"])))
        assert "concise" in chat["personalign"]["preference"] and chat["personalign"]["method"] == "prompt"
        suggestion = http.post(url + "/v1/feedback/suggest", headers=headers,
                                json={"prompt": "Hi", "answers": ["Hello.", verbose, verbose + " More."]}).json()
        # the short answer against a verbose one, not the two verbose ones, whose outcome would teach nothing
        assert suggestion["pair"] in ([0, 1], [0, 2]) and suggestion["user"] == "alice"
        for body in ({"prompt": "Hi", "answers": ["one"]}, {"prompt": "", "answers": ["a", "b"]}, {"x": 1}):
            assert http.post(url + "/v1/feedback/suggest", headers=headers, json=body).status_code == 400
        other = http.post(url + "/v1/feedback/suggest", headers=headers,
                           json={"prompt": "Hi", "answers": ["a", "b"], "user": "bob"})
        assert other.status_code == 403
        refit = offline_learner().fit(store.feedback("alice"), None)  # what a restarted server would compute
        assert refit.weights == learned["weights"]
    store.close()
