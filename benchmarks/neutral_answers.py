"""Does a policy give User Infos it does not read one default answer? Of a method's answers in an eval run, how many
are word for word another preference's answer to the same prompt, and how many its own answer to that prompt under a
neutral User Info (the three the stated distillation trains, scripts/stated_distillation.py, and the implicit
benchmark's):

    .venv/bin/python benchmarks/neutral_answers.py --generations runs/unseen-free-v7/free-text/generations.jsonl \
        --method metaalign

The neutral answers are written greedily at the run's token limit and batch size, with the run's policy, so that
equal texts mean the same answer and not a batch's other sums.
"""

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from personalign import GenerationRequest, load_engine

NEUTRALS = ("No special requests.", "Nothing in particular about me.", "Just answer normally.",
            "I have no particular preferences about the answer.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", required=True, type=Path, help="an eval run's generations.jsonl")
    parser.add_argument("--method", default="metaalign")
    args = parser.parse_args()
    run = json.loads((args.generations.parent / "run.json").read_text())["config"]
    answers = defaultdict(dict)  # prompt id -> preference -> answer
    for line in args.generations.open():
        record = json.loads(line)
        if record["method"] == args.method:
            answers[record["prompt_id"]][record["preference"]] = record
    if not answers:
        raise SystemExit(f"{args.generations} holds no answers by {args.method!r}")
    ids = sorted(answers, key=lambda i: (len(i), i))
    prompts = [next(iter(answers[i].values()))["prompt"] for i in ids]
    engine = load_engine(persrm="untrained", policy=run.get("policy"), dtype=run.get("dtype"))
    neutral = defaultdict(set)  # prompt id -> its answers under the neutral User Infos
    for user_info in NEUTRALS:
        for start in range(0, len(ids), run["batch_size"]):
            requests = [GenerationRequest(p, user_info, method=args.method, max_new_tokens=run["max_new_tokens"])
                        for p in prompts[start:start + run["batch_size"]]]
            for prompt_id, result in zip(ids[start:start + run["batch_size"]], engine.generate(requests)):
                neutral[prompt_id].add(result.text)
    total, repeated, defaults = 0, 0, Counter()
    for prompt_id, by_preference in answers.items():
        texts = Counter(a["text"] for a in by_preference.values())
        for preference, answer in by_preference.items():
            total += 1
            repeated += texts[answer["text"]] > 1
            if answer["text"] in neutral[prompt_id]:
                defaults[preference] += 1
    print(f"{args.method}: {total} answers; {repeated} ({repeated / total:.1%}) word for word another preference's "
          f"answer to the same prompt; {sum(defaults.values())} ({sum(defaults.values()) / total:.1%}) its answer "
          "under a neutral User Info")
    for preference, n in defaults.most_common():
        print(f"  {n:>3}  {preference}")


if __name__ == "__main__":
    main()
