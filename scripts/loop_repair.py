"""DPO pairs that repair a MetaAlign policy's mode where it fails: its own greedy answer, where that loops or echoes
the template, against a clean sample of its own (docs/metaalign-log.md, "Tried after it, not shipped:
loop repair").

    .venv/bin/python scripts/loop_repair.py --policy runs/policy-cfg150/policy --out runs/repair --limit 150
    personalign train-policy --data runs/repair --out runs/policy-repair --recipe sft-dpo --sft-steps 0 \\
        --sft-init runs/policy-cfg150/policy --dpo-pairs data ...

For a seeded sample of training prompts (ultrachat_short: never koala_eval_50 or alpaca_eval) the policy answers
greedily, as `personalign eval` decodes it, under each P-SOUPS dimension's stated text. Where that answer is
degenerate (answer_checks.degenerate: a loop or a template echo), the policy samples `--samples` answers to the same
meta-prompt (temperature 0.8, seeded per context); of the clean ones that stay as close to the question as the
greedy answer (MiniLM similarity at least MIN_CLOSENESS of its), the one the offline judge scores highest on the
dimension is chosen over the greedy answer. Only failing contexts give pairs, so DPO moves the mode where greedy
decoding fails and nowhere else.

Answers are appended to OUT/answers.jsonl as they are written, so a killed run resumes; a run with other settings is
refused. OUT/train.jsonl and OUT/valid.jsonl (the pairs of a tenth of the prompts) are written at the end, and
sft_train.jsonl / sft_valid.jsonl (the chosen answers under their meta-prompts), which train-policy reads beside them.
"""

import argparse
import json
import random
import zlib
from pathlib import Path

from stated_distillation import BACKGROUNDS, MIN_CLOSENESS, SAMPLE_TEMPERATURE, record_settings

from personalign import GenerationRequest, load_engine
from personalign.answer_checks import degenerate
from personalign.catalog import lookup
from personalign.data.metaalign import MetaPair, as_record, sft_examples
from personalign.data.prompt_sets import load_prompts
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.relevance import RelevanceJudge
from personalign.meta_prompt import DEFAULT_SYSTEM_INFO
from personalign.records import write_records_atomic

BATCH = 25


def _request(prompt: str, dim: str, settings: dict, sample: int | None = None) -> GenerationRequest:
    sampled = dict(temperature=SAMPLE_TEMPERATURE, seed=zlib.crc32(f"{prompt}|{dim}|{sample}".encode())) \
        if sample is not None else {}
    return GenerationRequest(prompt, lookup(dim).text, method="metaalign", max_new_tokens=settings["max_new_tokens"],
                             **sampled)


def write_answers(engine, out: Path, settings: dict) -> list[dict]:
    """Greedy answers to every context, then samples for the failing ones; appended per batch, read back on resume."""
    path = out / "answers.jsonl"
    answers = [json.loads(line) for line in path.open()] if path.is_file() else []
    done = {(a["prompt_id"], a["dim"], a["sample"]) for a in answers}
    prompts = load_prompts(settings["prompts"])
    random.Random(settings["seed"]).shuffle(prompts)
    contexts = [(p, dim) for p in prompts[:settings["limit"]] for dim in BACKGROUNDS]
    greedy = [(p, dim, None) for p, dim in contexts]
    _answer(engine, path, [c for c in greedy if (c[0].id, c[1], None) not in done], settings, answers, "greedy")
    failing = {(a["prompt_id"], a["dim"]) for a in answers if a["sample"] is None and degenerate(a["text"])}
    samples = [(p, dim, n) for p, dim in contexts if (p.id, dim) in failing for n in range(settings["samples"])]
    _answer(engine, path, [c for c in samples if (c[0].id, c[1], c[2]) not in done], settings, answers, "samples")
    return answers


def _answer(engine, path: Path, todo: list, settings: dict, answers: list[dict], what: str) -> None:
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        results = engine.generate([_request(p.prompt, dim, settings, n) for p, dim, n in chunk])
        written = [dict(prompt_id=p.id, prompt=p.prompt, dim=dim, sample=n, text=r.text,
                        truncated=r.finish_reason == "length") for (p, dim, n), r in zip(chunk, results)]
        with path.open("a") as f:
            f.writelines(json.dumps(a) + "\n" for a in written)
        answers += written
        print(f"{what}: {start + len(chunk)}/{len(todo)}", flush=True)


def repair_pairs(answers: list[dict], relevance=None) -> list[MetaPair]:
    """Per failing context, the best clean, on-question sample over the greedy answer (`relevance` a RelevanceJudge;
    default: the shipped MiniLM's)."""
    judge, relevance = OfflineJudge(), relevance or RelevanceJudge()
    contexts = {}
    for answer in answers:
        contexts.setdefault((answer["prompt_id"], answer["dim"]), []).append(answer)
    pairs = []
    for (prompt_id, dim), written in sorted(contexts.items()):
        greedy = next(a for a in written if a["sample"] is None)
        clean = [a for a in written if a["sample"] is not None and a["text"] and not degenerate(a["text"])]
        if not degenerate(greedy["text"]) or not clean:
            continue
        near = relevance.score_many([greedy["prompt"]] * (len(clean) + 1),
                                    [greedy["text"]] + [a["text"] for a in clean])
        clean = [a for a, sim in zip(clean, near[1:]) if sim >= MIN_CLOSENESS * near[0]]
        if not clean:
            continue
        scores = judge.score(dim, [""] * len(clean), [a["text"] for a in clean])
        best = clean[max(range(len(clean)), key=scores.__getitem__)]
        pairs.append(MetaPair(f"psoups:{dim}", DEFAULT_SYSTEM_INFO, lookup(dim).text, greedy["prompt"], best["text"],
                              greedy["text"], "diverse", True, chosen_truncated=best["truncated"],
                              rejected_truncated=greedy["truncated"]))
    return pairs


def write_data(out: Path, pairs: list[MetaPair]) -> dict[str, int]:
    """train/valid pairs (a tenth of the prompts valid) and the chosen answers as SFT examples beside them."""
    splits = {"train": [], "valid": []}
    for pair in pairs:
        splits["valid" if zlib.crc32(json.dumps(pair.prompt).encode()) % 10 == 0 else "train"].append(pair)
    for split, chosen in splits.items():
        write_records_atomic(out / f"{split}.jsonl", [as_record(p) for p in chosen])
        write_records_atomic(out / f"sft_{split}.jsonl", sft_examples(chosen))
    return {split: len(chosen) for split, chosen in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--policy", default=None, help="the policy to repair (default: the shipped one)")
    parser.add_argument("--prompts", default="ultrachat_short")
    parser.add_argument("--limit", type=int, default=150, help="prompts; each is answered under the six stated texts")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--samples", type=int, default=6, help="sampled answers per failing context")
    parser.add_argument("--seed", type=int, default=11, help="seed of the prompt sample")
    args = parser.parse_args()
    if args.limit < 1 or args.samples < 1:
        parser.error("--limit and --samples are 1 or more")
    out = Path(args.out)
    settings = dict(policy=args.policy, prompts=args.prompts, limit=args.limit, max_new_tokens=args.max_new_tokens,
                    samples=args.samples, seed=args.seed, temperature=SAMPLE_TEMPERATURE)
    record_settings(out, settings)
    answers = write_answers(load_engine(persrm="untrained", policy=args.policy), out, settings)
    failing = sum(a["sample"] is None and degenerate(a["text"]) for a in answers)
    pairs = repair_pairs(answers)
    if not pairs:
        raise SystemExit(f"no pairs: {failing} greedy answers failed and no clean sample stayed on their question")
    counts = write_data(out, pairs)
    by_dim = {dim: sum(p.preference == f"psoups:{dim}" for p in pairs) for dim in BACKGROUNDS}
    print(f"failing greedy answers: {failing}; pairs: {counts} ({by_dim})")


if __name__ == "__main__":
    main()
