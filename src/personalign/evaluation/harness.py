"""`personalign eval`: methods x prompts x preferences -> answers -> judges -> tables and plots.

Three resumable stages, each appending to a JSON-lines file in the output directory and skipping what is there:
    1. answers    generations.jsonl   one line per (method, preference, beta, prompt), with the settings that made it
    2. judgments  judgments.jsonl     judge scores, win/tie/loss against the baseline, perplexity and how close
                                      each answer stays to its question, each naming the answer (and baseline
                                      answer) it judged
    3. report     results.csv, results.md, *.png (rebuilt from the two files every time)
run.json records the latest run's settings; resuming with other settings for an existing answer is refused
(identity.py).
"""

import time
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from ..data.prompt_sets import load_prompts
from ..errors import PersonalignError
from ..preferences import Preference
from ..prompts import render_ids
from ..records import append_records, read_records, repair
from ..sharding import Shards, process_device
from .config import EvalConfig
from .identity import answer_id, check_resume, run_identity, write_run
from .judge_reward import JudgeReward, args_reward
from .judges.registry import load_judge
from .judges.relevance import RelevanceJudge
from .metrics import perplexities
from .plan import EVAL_METHODS, NONE, baseline_key, methods_of, plan_jobs, requests_for, settings_for

GENERATIONS = "generations.jsonl"
JUDGMENTS = "judgments.jsonl"
JUDGE_BATCH = 64


def run_eval(config: EvalConfig, engine=None, progress: bool = True) -> Path | None:
    """Run (or resume) the evaluation `config` describes; returns the output directory (None in processes but the
    first, under torchrun or accelerate launch: they answer their share, the first judges and reports)."""
    config.validate()
    prompts = load_prompts(config.prompts, config.limit, config.data_dir)
    judges = [load_judge(spec) for spec in config.judges]
    preferences = [Preference.parse(p) for p in config.preferences]
    _check_judges(judges, preferences)
    reward = None
    if any(m.uses_reward_judge for m in methods_of(config)):
        reward_judge = load_judge(config.reward_judge)
        reward = JudgeReward(reward_judge)
        for pref in preferences:
            reward.check(pref)
    _check_policy(config, engine)
    if engine is None:
        from ..api import load_engine
        engine = load_engine(config.base, config.persrm, policy=config.policy,
                             device=config.device or process_device(), dtype=config.dtype)
    if reward is not None:
        engine.set_sequence_reward(args_reward(reward_judge, reward, engine.persrm.vocab_size))
    out = Path(config.out)
    kitchen = None
    if any(m.merged_weights for m in methods_of(config)):
        from .soups import SoupKitchen
        kitchen = SoupKitchen(engine.bare_copy(), engine.tokenizer, config.soups)
        for pref in preferences:
            kitchen.check(pref)
    jobs = plan_jobs(config, prompts)
    identity = run_identity(config, engine)
    settings = {job.key: settings_for(job, config, identity) for job in jobs}
    check_resume(out, Shards(out / GENERATIONS).records(), settings)  # before anything in `out` is touched
    out.mkdir(parents=True, exist_ok=True)
    write_run(out, config, identity)
    if not generate_answers(engine, jobs, config, out / GENERATIONS, reward, progress, kitchen, settings).is_main:
        return None
    answers = {r["key"]: r for r in read_records(out / GENERATIONS)}
    records = [answers[j.key] for j in jobs]
    judge_answers(engine, judges, records, answers, config, out / JUDGMENTS, progress)
    from .report import write_report
    write_report(config, records, current_judgments(read_records(out / JUDGMENTS), records, answers, config), out)
    return out


def _check_policy(config, engine) -> None:
    """The metaalign methods need a trained policy: said before any model loads or anything is written."""
    from ..api import resolve_policy
    from ..models import resolve_model_source
    aligned = [m.name for m in methods_of(config) if m.decoding.base_adapter]
    missing = engine.policy is None if engine is not None else \
        resolve_policy(config.policy, resolve_model_source(config.base)) is None
    if aligned and missing:
        raise PersonalignError(f"methods: {aligned[0]} needs a trained MetaAlign policy (--policy DIR); the base "
                               "reading the meta-prompt is the meta-prompting method")


def _check_judges(judges, preferences) -> None:
    wanted = {key for p in preferences for key, _ in p.judged_dimensions}
    for judge in judges:
        if not any(judge.judges(key) for key in wanted):
            raise PersonalignError(f"judges: {judge.name} cannot judge any of the preferences "
                                   f"({', '.join(p.label for p in preferences)}); it judges: "
                                   f"{', '.join(judge.dimensions())}")


def generate_answers(engine, jobs, config, path: Path, reward, progress: bool, kitchen, settings) -> Shards:
    """Answer every job not yet on file (several processes, under torchrun or accelerate launch: each its share,
    merged at the end); returns the shards, which say whether this is the first process."""
    shards = Shards(path)
    done = {r["key"] for r in shards.done()}
    todo = shards.mine([j for j in jobs if j.key not in done])
    bar = tqdm(total=len(todo), desc="answers", unit="answer", disable=not progress)
    groups = defaultdict(list)  # soups change weights per preference; every other method mixes them in a batch
    for job in todo:
        groups[(job.method, job.preference if EVAL_METHODS[job.method].merged_weights else None)].append(job)
    for (name, preference), method_jobs in groups.items():
        method = EVAL_METHODS[name]
        decoder = kitchen.engine_for(Preference.parse(preference)) if method.merged_weights else engine
        # best-of-n decodes N answers per job: fewer jobs per batch keep the batch near batch_size rows
        per_batch = max(1, config.batch_size // (config.best_of_n if method.samples else 1))
        for start in range(0, len(method_jobs), per_batch):
            batch = method_jobs[start:start + per_batch]
            began = time.perf_counter()
            requests = [requests_for(job, config) for job in batch]
            results = decoder.generate([r for rs in requests for r in rs])
            records, i = [], 0
            for job, rs in zip(batch, requests):
                candidates, i = results[i:i + len(rs)], i + len(rs)
                chosen = candidates[0]
                if len(candidates) > 1:
                    scores = reward([r.preference for r in rs], [job.prompt] * len(rs), [c.text for c in candidates])
                    chosen = candidates[max(range(len(candidates)), key=scores.__getitem__)]
                records.append(dict(key=job.key, method=job.method, preference=job.preference, beta=job.beta,
                                    prompt_id=job.prompt_id, prompt=job.prompt, text=chosen.text,
                                    token_ids=chosen.token_ids, finish_reason=chosen.finish_reason,
                                    candidates=len(candidates), settings=settings[job.key]))
            seconds = (time.perf_counter() - began) / len(batch)
            for record in records:
                record["seconds"] = seconds
            append_records(shards.target(), records)
            bar.update(len(batch))
    bar.close()
    shards.merge("key", [j.key for j in jobs])
    return shards


def judge_answers(engine, judges, records, answers, config, path: Path, progress: bool) -> None:
    """Scores on every dimension a record's preference names (the base's answers: on all of them), win/tie/loss
    against the baseline on the same dimensions, perplexity under the base model, and whether the answer stays on
    the question (MiniLM cosine similarity of answer to prompt: a judge that rewards talking about the preference
    instead of answering is gamed, and this shows it). A judgment is done when one of the same answer (and, for a
    win, the same baseline answer) is on file."""
    repair(path)
    done = {(j["key"], j["judge"], j["dimension"], j["kind"], j.get("answer"), j.get("baseline"))
            for j in read_records(path)}

    def pending(record, judge_name, dim, kind):
        ids = _depends_on(record, kind, answers, config)
        return (record["key"], judge_name, dim, kind, ids["answer"], ids.get("baseline")) not in done

    all_dims = list(dict.fromkeys(key for p in config.preferences for key, _ in Preference.parse(p).judged_dimensions))
    tasks = defaultdict(list)  # (judge index, dimension, kind) -> records
    for record in records:
        dims = all_dims if record["preference"] == NONE else \
            [key for key, _ in Preference.parse(record["preference"]).judged_dimensions]
        for j, judge in enumerate(judges):
            for dim in dims:
                if not judge.judges(dim):
                    continue
                if judge.pointwise and pending(record, judge.name, dim, "score"):
                    tasks[(j, dim, "score")].append(record)
                if record["method"] != config.baseline and record["preference"] != NONE \
                        and pending(record, judge.name, dim, "win"):
                    tasks[(j, dim, "win")].append(record)
    fluency = [r for r in records if pending(r, "fluency", "", "perplexity")]
    on_question = [r for r in records if pending(r, RelevanceJudge.name, "", "on_question")]
    total = sum(len(v) for v in tasks.values()) + len(fluency) + len(on_question)
    bar = tqdm(total=total, desc="judgments", unit="judgment", disable=not progress or total == 0)
    for (j, dim, kind), items in tasks.items():
        judge = judges[j]
        for start in range(0, len(items), JUDGE_BATCH):
            chunk = items[start:start + JUDGE_BATCH]
            prompts, texts = [r["prompt"] for r in chunk], [r["text"] for r in chunk]
            if kind == "score":
                values = judge.score(dim, prompts, texts)
            else:
                values = judge.compare(dim, prompts, texts, [answers[baseline_key(r, config)]["text"]
                                                             for r in chunk])
            append_records(path, [dict(key=r["key"], judge=judge.name, dimension=dim, kind=kind, value=float(v),
                                       **_depends_on(r, kind, answers, config)) for r, v in zip(chunk, values)])
            bar.update(len(chunk))
    for start in range(0, len(fluency), JUDGE_BATCH):
        chunk = fluency[start:start + JUDGE_BATCH]
        prompt_ids = [render_ids(engine.tokenizer, r["prompt"], None) for r in chunk]
        with engine.bare_model():  # under the base itself, not through an adapter injected into it
            values = perplexities(engine.model, prompt_ids, [r["token_ids"] for r in chunk],
                                  engine.tokenizer.pad_token_id, config.batch_size)
        append_records(path, [dict(key=r["key"], judge="fluency", dimension="", kind="perplexity", value=v,
                                   **_depends_on(r, "perplexity", answers, config)) for r, v in zip(chunk, values)])
        bar.update(len(chunk))
    relevance = RelevanceJudge() if on_question else None
    for start in range(0, len(on_question), JUDGE_BATCH):
        chunk = on_question[start:start + JUDGE_BATCH]
        values = relevance.score_many([r["prompt"] for r in chunk], [r["text"] for r in chunk])
        append_records(path, [dict(key=r["key"], judge=relevance.name, dimension="", kind="on_question",
                                   value=float(v), **_depends_on(r, "on_question", answers, config))
                              for r, v in zip(chunk, values)])
        bar.update(len(chunk))
    bar.close()


def _depends_on(record, kind, answers, config) -> dict:
    """The answer a judgment of `record` judges and, for a win, the baseline answer it was compared with."""
    ids = dict(answer=answer_id(record))
    if kind == "win":
        ids["baseline"] = answer_id(answers[baseline_key(record, config)])
    return ids


def current_judgments(judgments, records, answers, config) -> list[dict]:
    """The judgments of these answers against the current baseline: a rerun with another --baseline, or a
    judgment of an answer since replaced, leaves lines on file that the report must not count."""
    by_key = {r["key"]: r for r in records}
    return [j for j in judgments if j["key"] in by_key
            and _depends_on(by_key[j["key"]], j["kind"], answers, config).items() <= j.items()]
