"""Do weights learned from a user's choices find their hidden preference? A simulation of issue 16's learning.

    .venv/bin/python benchmarks/learn_from_feedback.py --out runs/learn-sim --features offline,persrm [--beta 2]
        [--end-of-turn base] [--methods pad,metaalign-pad,metaalign]

1. A pool of PAD answers: the first `--pool-prompts` koala_eval_50 prompts, each answered under every one of the
   six P-SOUPS dimensions alone, under all six equally weighted, and by the base (greedy).
2. `--users` simulated users, each with hidden weights over the six dimensions (Dirichlet(`--alpha`), seeded).
   At each choice the user is shown a pool prompt (a seeded order per user, cycling) and the two of its answers the
   learner asks about (`PreferenceLearner.suggest`), and picks one with probability sigmoid((u_a - u_b) / `--noise`),
   u = the hidden weights . the offline judge's scores (each standardised by its spread over the pool).
3. After each of `--choices`: the cosine of the learned weights to the hidden ones (and of the uniform prior, for
   scale); since the offline judge scores each axis' two ends as one measure (expert = -elementary, friendly =
   -unfriendly, concise ~ -informative), choices only identify each axis' contrast (w_expert - w_elementary, ...),
   so the cosine of those three contrasts is printed too. Then the next `--test-prompts` koala prompts (never in
   the pool) are decoded under the learned weights (their positive part, summing to one) and under uniform weights,
   with each of `--methods` (PAD; metaalign-pad, PAD over the shipped MetaAlign policy reading the mix as User Info,
   as a profile whose method is metaalign-pad is served; metaalign, that policy alone); the learned answer wins
   when the hidden utility scores it higher (ties half). The decoded mix nets each axis as the server does
   (LearnedWeights.as_dims); `mix cos` is its cosine to the hidden weights' own decoded mix.
   Loops, template echo and closeness to the question (relevance judge) of both are printed beside the win rate.
   The last row, `hidden`, decodes with the hidden weights themselves: what a learner that found them would win.

Answers are cached in OUT/answers.jsonl and reused by a rerun (a killed run resumes, and a rerun with more methods
decodes only theirs); OUT/settings.json holds what they depend on and a rerun with other settings is refused. The
pool is PAD's whatever `--methods` says, so every method is tested on weights learned from the same choices.
"""

import argparse
import json
from pathlib import Path
from statistics import fmean

import numpy as np
from tqdm import tqdm

from personalign import GenerationRequest, load_engine
from personalign.answer_checks import echoes_template, loops
from personalign.commands.serve import offline_learner, persrm_features
from personalign.data.prompt_sets import load_prompts
from personalign.decoding.request import DEFAULT_END_OF_TURN, END_OF_TURN
from personalign.evaluation.identity import dir_identity, model_identity, persrm_identity
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.relevance import RelevanceJudge
from personalign.models import resolve_model_source
from personalign.preferences import Preference
from personalign.records import append_records, read_records, write_text_atomic
from personalign.serving.preference_learner import L2, LearnedWeights, PreferenceLearner
from personalign.serving.profiles import Feedback

DIMS = ("elementary", "expert", "concise", "informative", "friendly", "unfriendly")
AXES = (("expert", "elementary"), ("informative", "concise"), ("friendly", "unfriendly"))
UNIFORM = {d: 1 / len(DIMS) for d in DIMS}
POOL_MIXES = [{d: 1.0} for d in DIMS] + [UNIFORM, None]  # None: the base's answer
METHODS = ("pad", "metaalign-pad", "metaalign")


class AnswerCache:
    """Answers by (prompt, weights, method), decoded in batches and appended to OUT/answers.jsonl."""

    def __init__(self, out: Path, engine, max_new_tokens: int, batch_size: int, beta: float, end_of_turn: str):
        self.path, self.engine = out / "answers.jsonl", engine
        self.max_new_tokens, self.batch_size, self.beta, self.end_of_turn = max_new_tokens, batch_size, beta, end_of_turn
        # records made before methods were named are PAD's
        self.texts = ({(r["prompt"], r["mix"], r.get("method", "pad")): r["text"] for r in read_records(self.path)}
                      if self.path.exists() else {})

    def get(self, prompt: str, mix: dict | None, method: str = "pad") -> str:
        return self.texts[(prompt, _mix_key(mix), method)]

    def decode(self, wanted: list[tuple[str, dict | None]], label: str, method: str = "pad") -> None:
        todo = list({(p, _mix_key(m)): (p, m) for p, m in wanted
                     if (p, _mix_key(m), method) not in self.texts}.values())
        with tqdm(total=len(todo), desc=label, unit="answer") as bar:
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start:start + self.batch_size]
                results = self.engine.generate([self._request(p, m, method) for p, m in chunk])
                records = [dict(prompt=p, mix=_mix_key(m), method=method, text=r.text)
                           for (p, m), r in zip(chunk, results)]
                append_records(self.path, records)
                self.texts.update({(r["prompt"], r["mix"], method): r["text"] for r in records})
                bar.update(len(chunk))

    def _request(self, prompt: str, mix: dict | None, method: str) -> GenerationRequest:
        if mix is None:
            return GenerationRequest(prompt, method="base", max_new_tokens=self.max_new_tokens)
        return GenerationRequest(prompt, Preference.from_dims(mix), method=method, max_new_tokens=self.max_new_tokens,
                                 beta=self.beta, end_of_turn=self.end_of_turn)


def _mix_key(mix: dict | None) -> str:
    return "base" if mix is None else json.dumps({d: round(w, 4) for d, w in sorted(mix.items())})


def judge_scores(judge: OfflineJudge, texts: list[str]) -> np.ndarray:
    return np.array([judge.score(d, [""] * len(texts), texts) for d in DIMS]).T


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def contrasts(weights: np.ndarray) -> np.ndarray:
    return np.array([weights[DIMS.index(hi)] - weights[DIMS.index(lo)] for hi, lo in AXES])


def memoized(featurize, path: Path):
    """Features are per answer: each (prompt, answer) is featurized once for all users, and kept in `path` for a
    rerun."""
    cache = {(r["prompt"], r["answer"]): r["features"] for r in read_records(path)} if path.exists() else {}

    def features(prompt: str, answers: list[str]) -> list[list[float]]:
        missing = [a for a in dict.fromkeys(answers) if (prompt, a) not in cache]
        if missing:
            rows = [dict(prompt=prompt, answer=a, features=f) for a, f in zip(missing, featurize(prompt, missing))]
            append_records(path, rows)
            cache.update({(r["prompt"], r["answer"]): r["features"] for r in rows})
        return [cache[(prompt, a)] for a in answers]
    return features


def simulate(learner, hidden: np.ndarray, pool: dict[str, list[str]], standardise, order: list[str],
             checkpoints: list[int], noise: float, rng) -> dict[int, np.ndarray]:
    """One user's choices; the learned weights after each checkpoint."""
    events, learned_at = [], {}
    for n in range(max(checkpoints)):
        prompt = order[n % len(order)]
        answers = pool[prompt]
        i, j, _ = learner.suggest(learner.fit(events), prompt, answers)
        utility = standardise(answers) @ hidden
        chose_i = rng.random() < 1 / (1 + np.exp(-(utility[i] - utility[j]) / noise))
        events.append((n, Feedback("pair", prompt, answers[i], answers[j], "a" if chose_i else "b")))
        if n + 1 in checkpoints:
            fitted = learner.fit(events)
            learned_at[n + 1] = np.array([fitted.weights[d] for d in DIMS])
    return learned_at


def decodable(weights: np.ndarray) -> dict:
    """The mix PAD decodes with, as the server does (each axis netted; uniform when nothing is wanted)."""
    return LearnedWeights(dict(zip(DIMS, weights.tolist())), choices=1).as_dims() or UNIFORM


def _vector(mix: dict) -> np.ndarray:
    return np.array([mix.get(d, 0.0) for d in DIMS])


def featurizer(name: str):
    if name == "offline":
        return offline_learner().featurize
    return persrm_features(None, resolve_model_source(None), DIMS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where answers are cached (a rerun resumes)")
    parser.add_argument("--features", default="offline,persrm", help="feature sets to learn with: offline, persrm")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--choices", default="10,20,40", help="checkpoints, in choices made")
    parser.add_argument("--pool-prompts", type=int, default=30)
    parser.add_argument("--test-prompts", type=int, default=6, help="0: the learning alone, nothing decoded")
    parser.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration of the hidden weights")
    parser.add_argument("--noise", type=float, default=0.25, help="temperature of the users' choices")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--beta", type=float, default=1.0, help="PAD's beta for every answer, pool and test")
    parser.add_argument("--end-of-turn", default=DEFAULT_END_OF_TURN, choices=END_OF_TURN,
                        help="how PAD scores the end of turn (see README, How PAD is decoded)")
    parser.add_argument("--methods", default="pad", help=f"how test answers are decoded: {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=L2, help="the learner's pull toward the uniform prior")
    args = parser.parse_args()
    checkpoints = sorted(int(c) for c in args.choices.split(","))
    methods = args.methods.split(",")
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown method {', '.join(sorted(unknown))}; choose from {', '.join(METHODS)}")
    engine, judge = load_engine(), OfflineJudge()
    # the models by their files: "the shipped PersRM" names another one after each release
    settings = dict(max_new_tokens=args.max_new_tokens, model=model_identity(engine.model),
                    persrm=persrm_identity(engine.persrm, engine.model), decoding="greedy", beta=args.beta,
                    policy=dir_identity(engine.policy_source) if engine.policy_source else "none")
    if args.end_of_turn != "reward":  # directories made before the flag were made with reward
        settings["end_of_turn"] = args.end_of_turn
    args.out.mkdir(parents=True, exist_ok=True)
    settings_path = args.out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise SystemExit(f"{args.out} holds answers made with {settings_path.read_text()}; use another --out")
    write_text_atomic(settings_path, json.dumps(settings))

    prompts = [p.prompt for p in load_prompts("koala_eval_50", args.pool_prompts + args.test_prompts)]
    pool_prompts, test_prompts = prompts[:args.pool_prompts], prompts[args.pool_prompts:]
    cache = AnswerCache(args.out, engine, args.max_new_tokens, args.batch_size, args.beta, args.end_of_turn)
    cache.decode([(p, m) for p in pool_prompts for m in POOL_MIXES], "pool")
    pool = {p: [cache.get(p, m) for m in POOL_MIXES] for p in pool_prompts}
    scores = judge_scores(judge, [a for answers in pool.values() for a in answers])
    mean, spread = scores.mean(0), scores.std(0) + 1e-9

    def standardise(texts: list[str]) -> np.ndarray:
        return (judge_scores(judge, texts) - mean) / spread

    rng = np.random.default_rng(args.seed)
    hidden = rng.dirichlet([args.alpha] * len(DIMS), args.users)
    orders = [list(rng.permutation(pool_prompts)) for _ in range(args.users)]
    learned = {}  # (features, user, checkpoint) -> weights
    for name in args.features.split(","):
        featurize = memoized(featurizer(name), args.out / f"features-{name}.jsonl")
        for user in tqdm(range(args.users), desc=f"choices ({name})", unit="user"):
            learner = PreferenceLearner(DIMS, featurize, args.l2)  # its own: a learner caches features by event id
            user_rng = np.random.default_rng([args.seed, user])
            for n, w in simulate(learner, hidden[user], pool, standardise, orders[user], checkpoints, args.noise,
                                 user_rng).items():
                learned[(name, user, n)] = w

    for user in range(args.users):  # the ceiling: PAD decoding with the hidden weights themselves
        learned[("hidden", user, 0)] = hidden[user]
    mixes = [UNIFORM] + [decodable(w) for w in learned.values()]
    for method in methods:
        cache.decode([(p, m) for m in mixes for p in test_prompts], f"test answers ({method})", method)
    relevance = RelevanceJudge()

    def checks(texts: list[str]) -> str:
        on_question = relevance.score_many(test_prompts * (len(texts) // len(test_prompts)), texts)
        looping, echoing = fmean(map(loops, texts)), fmean(map(echoes_template, texts))
        return f"{looping:>6.1%} {echoing:>5.1%} {fmean(on_question):>11.3f}"

    print(f"\nPAD at beta {args.beta}, end of turn by {args.end_of_turn}; {len(DIMS)} P-SOUPS dimensions, "
          f"{args.users} users (Dirichlet {args.alpha}), noise {args.noise}, "
          f"pool {args.pool_prompts} prompts x {len(POOL_MIXES)} answers, {args.test_prompts} test prompts")
    print(f"{'method':<13} {'features':<9} {'choices':>7} {'cosine':>7} {'mix cos':>7} {'prior cos':>9} "
          f"{'axis cos':>8} {'win vs uniform':>14} {'loops':>6} {'echo':>5} {'on question':>11}")
    for method in methods if test_prompts else ["(no tests)"]:  # --test-prompts 0: the learning alone, in seconds
        uniform_texts = [cache.get(p, UNIFORM, method) for p in test_prompts]
        uniform_z = standardise(uniform_texts) if test_prompts else None
        for name, n in [(name, n) for name in args.features.split(",") for n in checkpoints] + [("hidden", 0)]:
            cos, mix, prior, axis, wins, texts = [], [], [], [], [], []
            for user in range(args.users):
                w, h = learned[(name, user, n)], hidden[user]
                cos.append(cosine(w, h))
                mix.append(cosine(_vector(decodable(w)), _vector(decodable(h))))
                prior.append(cosine(np.full(len(DIMS), 1 / len(DIMS)), h))
                axis.append(cosine(contrasts(w), contrasts(h)))
                if test_prompts:
                    mine = [cache.get(p, decodable(w), method) for p in test_prompts]
                    gain = standardise(mine) @ h - uniform_z @ h
                    wins += [1.0 if g > 1e-9 else 0.0 if g < -1e-9 else 0.5 for g in gain]
                    texts += mine
            tested = f" {fmean(wins):>14.3f} {checks(texts)}" if test_prompts else ""
            print(f"{method:<13} {name:<9} {n or '':>7} {fmean(cos):>7.3f} {fmean(mix):>7.3f} {fmean(prior):>9.3f} "
                  f"{fmean(axis):>8.3f}{tested}")
        if test_prompts:
            print(f"{method:<13} {'uniform':<9} {'':>7} {'':>7} {'':>7} {'':>9} {'':>8} {'':>14} "
                  f"{checks(uniform_texts)}")


if __name__ == "__main__":
    main()
