"""Each user's weights over the preference dimensions, fitted from their feedback (a Bradley-Terry model).

An answer's features are one score per dimension (a `Featurizer`, see commands/serve.py: the PersRM's summed reward
under each dimension, training/answer_rewards.py, or the offline judge's scores). A pairwise choice says
P(a beats b) = sigmoid(w . (f_a - f_b)); a tie counts as half a win each way; a rating compares the answer with the
mean of the user's rated and compared answers (up: it won). The weights minimise the logistic loss plus
l2 * |w - prior|^2, where the prior is the user's stated dims (uniform when they stated none), by Newton's method: a
handful of features, so a refit after every event costs milliseconds (once the features are known). Features are
standardised by their spread over the user's own answers, so that word counts and sentiment weigh alike. The fit
keeps its uncertainty (the inverse Hessian at the optimum, a Laplace approximation), which decides what to ask next.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import catalog
from .profiles import Feedback

# (prompt, answers) -> one row of scores per answer, one column per dimension, higher = more of it
Featurizer = Callable[[str, list[str]], list[list[float]]]
L2 = 10.0  # pull toward the prior: with few choices the stated preference still counts (chosen by simulation, README)
NEWTON_STEPS = 25


@dataclass(frozen=True)
class LearnedWeights:
    weights: dict[str, float]  # per dimension, as fitted (a weight may be negative)
    choices: int  # the feedback events they rest on
    scale: tuple[float, ...] | None = None  # the features' spread the weights were fitted on (None: no events)
    covariance: tuple[tuple[float, ...], ...] | None = None  # of the weights, fitted (None: the prior's)

    def as_dims(self) -> dict[str, float] | None:
        """A decodable mix, summing to one (None when nothing is wanted): the two ends of an axis are netted, the
        end ahead keeping the difference (weight on both ends only asks PAD for two pulls that cancel, and choices
        identify just the contrast); other dimensions keep their positive weight."""
        wanted = {}
        for name, w in self.weights.items():
            opposite = catalog.OPPOSITE.get(name)
            net = w - self.weights[opposite] if opposite in self.weights else w
            if net > 0:
                wanted[name] = net
        total = sum(wanted.values())
        return {name: round(w / total, 4) for name, w in wanted.items()} if total > 0 else None


class PreferenceLearner:
    def __init__(self, dimensions: tuple[str, ...], featurize: Featurizer, l2: float = L2, features: str = "custom"):
        """`features`: what `featurize` scores, as profiles show it ("persrm", "offline", ...)."""
        self.dimensions, self.featurize, self.l2, self.features = dimensions, featurize, l2, features
        self._features: dict[int, np.ndarray] = {}  # event id -> features of its answers (each event's own)

    def fit(self, events: list[tuple[int, Feedback]], prior: dict[str, float] | None = None) -> LearnedWeights:
        """Weights from a user's events (id, event), oldest first; `prior`: their stated dims."""
        w0 = self._prior(prior)
        if not events:
            return LearnedWeights(dict(zip(self.dimensions, w0.tolist())), 0)
        features = [self._features_of(event_id, event) for event_id, event in events]
        scale = spread_of(np.concatenate(features))
        reference = np.concatenate(features).mean(0)
        deltas, wins = [], []
        for (_, event), f in zip(events, features):
            if event.kind == "pair":
                deltas.append(f[0] - f[1])
                wins.append({"a": 1.0, "b": 0.0, "tie": 0.5}[event.choice])
            else:
                deltas.append(f[0] - reference)
                wins.append(1.0 if event.choice == "up" else 0.0)
        deltas = np.array(deltas) / scale
        w = bradley_terry(deltas, np.array(wins), w0, self.l2)
        covariance = np.linalg.inv(hessian(deltas, w, self.l2))
        return LearnedWeights(dict(zip(self.dimensions, w.round(6).tolist())), len(events), tuple(scale.tolist()),
                              tuple(map(tuple, covariance.tolist())))

    def suggest(self, learned: LearnedWeights, prompt: str, answers: list[str]) -> tuple[int, int, float]:
        """Which two of `answers` to ask about next: the pair whose outcome would teach the weights most, by expected
        information p(1 - p) * d' C d (d: the pair's standardised feature difference, p: the predicted chance the
        first wins, C: the weights' covariance; d' C d is how uncertain the predicted log-odds are). Closest to
        p = 1/2 alone would ask about near-identical answers, which teach nothing, and keep asking along directions
        already known; in the simulation (README) this rule found hidden weights in fewer choices.
        Returns (i, j, P(answers[i] beats answers[j]))."""
        z = np.array(self.featurize(prompt, answers), dtype=float)
        z /= np.array(learned.scale) if learned.scale else spread_of(z)
        w = np.array([learned.weights[name] for name in self.dimensions])
        covariance = (np.array(learned.covariance) if learned.covariance
                      else np.eye(len(w)) / (2 * self.l2))  # no events yet: the prior's
        pairs = [(i, j) for i in range(len(answers)) for j in range(i + 1, len(answers))]
        d = np.array([z[i] - z[j] for i, j in pairs])
        p = sigmoid(d @ w)
        information = p * (1 - p) * np.einsum("pi,ij,pj->p", d, covariance, d)
        best = int(np.argmax(information))
        return *pairs[best], float(p[best])

    def _prior(self, stated: dict[str, float] | None) -> np.ndarray:
        if not stated:
            return np.full(len(self.dimensions), 1.0 / len(self.dimensions))
        return np.array([float(stated.get(name, 0.0)) for name in self.dimensions])

    def _features_of(self, event_id: int, event: Feedback) -> np.ndarray:
        if event_id not in self._features:
            answers = [event.answer_a] + ([event.answer_b] if event.answer_b is not None else [])
            self._features[event_id] = np.array(self.featurize(event.prompt, answers), dtype=float)
        return self._features[event_id]


def bradley_terry(deltas: np.ndarray, wins: np.ndarray, prior: np.ndarray, l2: float) -> np.ndarray:
    """argmin_w  -sum[y log s(w.d) + (1 - y) log s(-w.d)] + l2 |w - prior|^2  (s: the sigmoid), by Newton."""
    w = prior.copy()
    for _ in range(NEWTON_STEPS):
        p = sigmoid(deltas @ w)
        gradient = deltas.T @ (p - wins) + 2 * l2 * (w - prior)
        step = np.linalg.solve(hessian(deltas, w, l2), gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def hessian(deltas: np.ndarray, w: np.ndarray, l2: float) -> np.ndarray:
    """Of bradley_terry's objective at w; its inverse at the optimum is the weights' covariance (Laplace)."""
    p = sigmoid(deltas @ w)
    return (deltas.T * (p * (1 - p))) @ deltas + 2 * l2 * np.eye(len(w))


def spread_of(features: np.ndarray) -> np.ndarray:
    """Each feature's spread over rows of answers, what standardising divides by. A feature that has not varied
    keeps its own units: dividing by ~0 would make any later difference in it look infinite (and suggest() would
    never ask about it)."""
    spread = features.std(0)
    return np.where(spread > 1e-6, spread, 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
