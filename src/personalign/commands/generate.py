"""`personalign generate`: validate everything first (a typo costs no model load), then decode in batches."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import quiet_loading
from .flags import add_flags, flag_values
from ..decoding import methods
from ..decoding.request import GenerationRequest
from ..errors import PersonalignError
from ..preferences import Preference
from ..prompts import as_messages
from ..validation import parse_json_lines

# the decoding settings a user sets per command (flags) or per line (--input)
SETTINGS = ["beta", "top_k", "max_new_tokens", "temperature", "top_p", "seed", "stop", "reward", "end_of_turn",
            "system_info", "allow_negative_beta"]
_LINE_FIELDS = {"id", "prompt", "preference", "dims", "method", *SETTINGS}
HINT = ("personalign: hint: no preference given, so this is the base model's answer; personalize it with -p "
        "concise (a catalog name) or -p 'any text'")


def add_arguments(parser) -> None:
    parser.add_argument("prompt", nargs="?", help="the prompt (or use --input)")
    parser.add_argument("--input", metavar="FILE.jsonl",
                        help='prompts as JSON lines: {"prompt": ..., optional "preference", "dims", "method", "beta", '
                             '...} (any setting below, by its field name)')
    parser.add_argument("-p", "--preference", action="append", default=[],
                        help="a preference: free text, or a catalog name (concise, expert, P2A, ...); repeatable")
    parser.add_argument("--user-info", action="append", dest="preference", metavar="TEXT",
                        help="MetaAlign's User Info (the user's background or preferences): the same as -p, named "
                             "as the meta-prompt's tier; repeatable")
    parser.add_argument("--dims", action="append", default=[],
                        help="a weighted mix of catalog dimensions, e.g. concise=0.7,friendly=0.3; repeatable")
    parser.add_argument("--with-base", action="store_true", help="also print the base model's answer")
    parser.add_argument("--method", default=None, choices=methods.names(), help=_method_help())
    parser.add_argument("--reward-judge", default="offline",
                        help="the judge steering --method args (default offline; see personalign eval --help)")
    parser.add_argument("--persrm", default=None,
                        help="PersRM: a saved PersRM dir, 'untrained', or a causal-LM dir or hub id (default: the "
                             "trained PersRM shipped for the embedded model; untrained for other bases)")
    parser.add_argument("--policy", default=None,
                        help="MetaAlign policy for --method metaalign / metaalign-pad: a saved policy dir "
                             "(train-policy's RUN/policy) or 'untrained' (none; default: the policy shipped for "
                             "the embedded model, none for other bases)")
    add_flags(parser, GenerationRequest, SETTINGS)
    parser.add_argument("--batch-size", type=int, default=8, help="requests decoded together (default 8)")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated (one answer)")
    parser.add_argument("--json", action="store_true", help="one JSON object per answer")


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
    engine = load_engine(args.base, args.persrm, policy=args.policy, device=args.device, dtype=args.dtype)
    if reward is not None:
        from ..evaluation.judge_reward import args_reward
        engine.set_sequence_reward(args_reward(reward.judge, reward, engine.persrm.vocab_size))
    if args.stream:
        for delta in engine.stream(jobs[0].request):
            print(delta, end="", flush=True)
        print()
        return _hint(args)
    for start in range(0, len(jobs), args.batch_size):
        chunk = jobs[start:start + args.batch_size]
        results = engine.generate([j.request for j in chunk])
        if args.input:
            print(f"[{start + len(chunk)}/{len(jobs)}]", file=sys.stderr, flush=True)
        for job, result in zip(chunk, results):
            _print(job, result, args.json, several=len(jobs) > 1)
    return _hint(args)


def _hint(args) -> int:
    """After the answers (a request can still be refused while decoding, by the context length): a hint never
    precedes an error."""
    if not args.input and args.method is None and not (args.preference or args.dims):
        print(HINT, file=sys.stderr)
    return 0


def _print(job: Job, result, as_json: bool, several: bool) -> None:
    if as_json:
        record = {"id": job.id, "prompt": job.prompt} if job.id is not None else {"prompt": job.prompt}
        print(json.dumps(record | result.to_json(), ensure_ascii=False), flush=True)
    elif several:
        print(f"== {job.label} ==\n{result.text.strip()}\n", flush=True)
    else:
        print(result.text.strip(), flush=True)


def _method_help() -> str:
    defaults = {methods.DEFAULT: " (default with a preference)", methods.UNPERSONALIZED: " (default without one)"}
    return "; ".join(f"{m.name}{defaults.get(m.name, '')}: {m.description}" for m in methods.REGISTRY.values())


def _args_reward(judge_spec: str, jobs: list[Job]):
    """The judge that steers `args` requests, checked against their preferences before any model loads."""
    args_prefs = [j.request.preference for j in jobs if methods.get(j.request.method).rule is methods.Rule.ARGS]
    if not args_prefs:
        return None
    from ..evaluation.judge_reward import JudgeReward
    from ..evaluation.judges.registry import load_judge
    reward = JudgeReward(load_judge(judge_spec))
    for pref in args_prefs:
        reward.check(pref)
    return reward


def _settings(args) -> dict:
    return flag_values(args, GenerationRequest, SETTINGS)


def _jobs_from_flags(args) -> list[Job]:
    if args.prompt is None:
        raise PersonalignError("give a PROMPT or --input FILE.jsonl")
    as_messages(args.prompt)  # an empty prompt is the first thing to say
    settings = _settings(args)
    preferences = [Preference.parse(p) for p in args.preference] + [Preference.from_dims(d) for d in args.dims]
    method = methods.get(args.method or (methods.DEFAULT if preferences else methods.UNPERSONALIZED))
    if method.needs_preference and not preferences:
        raise PersonalignError(f"--method {method.name} needs --preference or --dims "
                               f"(or use --method {methods.UNPERSONALIZED})")
    jobs = []
    if args.with_base or not method.needs_preference:
        plain = methods.get(methods.UNPERSONALIZED) if method.needs_preference else method
        jobs.append(Job(plain.label, args.prompt, GenerationRequest(args.prompt, method=plain.name, **settings)))
    if method.needs_preference:
        for pref in preferences:
            request = GenerationRequest(args.prompt, pref, method=method.name, **settings)
            jobs.append(Job(f"{pref.label} ({method.label.format(beta=request.beta)})", args.prompt, request))
    return jobs


def _jobs_from_file(args) -> list[Job]:
    if args.prompt is not None:
        raise PersonalignError("give either a PROMPT or --input, not both")
    path = Path(args.input)
    defaults = _settings(args)
    default_pref = args.preference[0] if args.preference else None
    return parse_json_lines(path, "input file", lambda record: _job_from_record(record, defaults, default_pref, args),
                            "holds no prompts")


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
    method = record.get("method", args.method or (methods.UNPERSONALIZED if pref.is_empty else methods.DEFAULT))
    request = GenerationRequest(record["prompt"], pref, method=method, **settings)
    return Job(pref.label, record["prompt"], request, record.get("id"))
