"""`personalign generate`: validate everything first (a typo costs no model load), then decode in batches."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import quiet_loading
from ..decoding.request import GenerationRequest
from ..errors import PersonalignError
from ..preferences import Preference

_LINE_FIELDS = {"id", "prompt", "preference", "dims", "method", "beta", "top_k", "max_new_tokens", "temperature",
                "top_p", "seed", "stop", "reward"}


@dataclass
class Job:
    label: str
    prompt: object
    request: GenerationRequest
    id: object = None


def run(args) -> int:
    if args.batch_size < 1:
        raise PersonalignError(f"--batch-size must be >= 1, got {args.batch_size}")
    jobs = _jobs_from_file(args) if args.input else _jobs_from_flags(args)
    if args.stream and len(jobs) != 1:
        raise PersonalignError(f"--stream shows one answer; this run has {len(jobs)}")
    from ..api import load_engine

    quiet_loading()

    reward = _args_reward(args.reward_judge, jobs)
    engine = load_engine(args.base, args.persrm, device=args.device, dtype=args.dtype)
    if reward is not None:
        from ..evaluation.judge_reward import args_reward
        engine.set_sequence_reward(args_reward(reward.judge, reward, engine.persrm.vocab_size))
    if args.stream:
        for delta in engine.stream(jobs[0].request):
            print(delta, end="", flush=True)
        print()
        return 0
    for start in range(0, len(jobs), args.batch_size):
        chunk = jobs[start:start + args.batch_size]
        results = engine.generate([j.request for j in chunk])
        if args.input:
            print(f"[{start + len(chunk)}/{len(jobs)}]", file=sys.stderr, flush=True)
        for job, result in zip(chunk, results):
            _print(job, result, args.json, several=len(jobs) > 1)
    return 0


def _print(job: Job, result, as_json: bool, several: bool) -> None:
    if as_json:
        record = {"id": job.id, "prompt": job.prompt} if job.id is not None else {"prompt": job.prompt}
        print(json.dumps(record | result.to_json(), ensure_ascii=False), flush=True)
    elif several:
        print(f"== {job.label} ==\n{result.text.strip()}\n", flush=True)
    else:
        print(result.text.strip(), flush=True)


_HOW = {"pad": "PAD, beta={beta:g}", "prompt": "preference prompting", "fusion": "logit fusion, beta={beta:g}",
        "args": "ARGS, beta={beta:g}"}


def _args_reward(judge_spec: str, jobs: list[Job]):
    """The judge that steers `args` requests, checked against their preferences before any model loads."""
    args_prefs = [j.request.preference for j in jobs if j.request.method == "args"]
    if not args_prefs:
        return None
    from ..evaluation.judge_reward import JudgeReward
    from ..evaluation.judges.registry import load_judge
    reward = JudgeReward(load_judge(judge_spec))
    for pref in args_prefs:
        reward.check(pref)
    return reward


def _settings(args) -> dict:
    return dict(beta=args.beta, top_k=args.top_k, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                top_p=args.top_p, seed=args.seed, stop=tuple(args.stop), reward=args.reward)


def _jobs_from_flags(args) -> list[Job]:
    if args.prompt is None:
        raise PersonalignError("give a PROMPT or --input FILE.jsonl")
    settings = _settings(args)
    preferences = [Preference.parse(p) for p in args.preference] + [Preference.from_dims(d) for d in args.dims]
    jobs = []
    if args.with_base or args.method == "base":
        jobs.append(Job("base (no preference)", args.prompt,
                        GenerationRequest(args.prompt, method="base", **settings)))
    if args.method != "base":
        if not preferences:
            raise PersonalignError(f"--method {args.method} needs --preference or --dims (or use --method base)")
        for pref in preferences:
            request = GenerationRequest(args.prompt, pref, method=args.method, **settings)
            how = _HOW[args.method].format(beta=args.beta)
            jobs.append(Job(f"{pref.label} ({how})", args.prompt, request))
    return jobs


def _jobs_from_file(args) -> list[Job]:
    if args.prompt is not None:
        raise PersonalignError("give either a PROMPT or --input, not both")
    path = Path(args.input)
    if not path.is_file():
        raise PersonalignError(f"input file not found: {path}")
    defaults = _settings(args)
    default_pref = args.preference[0] if args.preference else None
    jobs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            jobs.append(_job_from_record(json.loads(line), defaults, default_pref, args))
        except json.JSONDecodeError as error:
            raise PersonalignError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        except PersonalignError as error:
            raise PersonalignError(f"{path}:{number}: {error}") from None
    if not jobs:
        raise PersonalignError(f"{path} holds no prompts")
    return jobs


def _job_from_record(record, defaults: dict, default_pref, args) -> Job:
    if not isinstance(record, dict) or "prompt" not in record:
        raise PersonalignError('each line must be a JSON object with a "prompt"')
    unknown = set(record) - _LINE_FIELDS
    if unknown:
        raise PersonalignError(f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_LINE_FIELDS))}")
    if "dims" in record:
        pref = Preference.from_dims(record["dims"])
    else:
        pref = Preference.parse(record.get("preference", default_pref))
    settings = {k: record.get(k, v) for k, v in defaults.items()}
    settings["stop"] = tuple(settings["stop"])
    method = record.get("method", "base" if pref.is_empty and args.method == "pad" else args.method)
    request = GenerationRequest(record["prompt"], pref, method=method, **settings)
    return Job(pref.label, record["prompt"], request, record.get("id"))
