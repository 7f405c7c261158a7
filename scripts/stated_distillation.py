"""MetaAlign SFT data that answers backgrounds as the policy answers the preference they imply (context distillation;
docs/metaalign-log.md, "The shipped policy (v7…)" and "Tried on v6, not shipped: stated answers distilled into
backgrounds").

    .venv/bin/python scripts/stated_distillation.py --out runs/distill --limit 500     # about 12 min on 2 CPU cores
    personalign train-policy --data runs/distill --out runs/policy-distill --recipe sft --sft-init POLICY ...

For each training prompt (ultrachat_short, a seeded sample: never koala_eval_50, where the implicit benchmark asks)
the policy writes its greedy answer under a neutral User Info and under each P-SOUPS dimension's stated text. Where
the stated answer moves the offline judge's measure of its dimension past the neutral answer, is clean (no loop, no
template echo) and stays as close to the question (MiniLM similarity at least 0.85 of the neutral answer's), it
becomes the SFT target under the stated text and under four backgrounds implying that dimension; each neutral answer
stays the target under a neutral User Info, so the policy's default does not drift. The backgrounds are the training
ones (PSOUPS_PERSONAS) and thirteen more per dimension below, none of them the benchmark's personas, and none using
their key words ("eight years old", "professor", "hurry", "full picture", "cheering up", "friendliness").

`--hold-out psoups:DIM,...` (the preference ids of `personalign data metaalign --hold-out`) leaves those dimensions
out: no stated answer, target or background, as a hold-out run needs (scripts/holdout_shipped_recipe.sh).

With `--samples K` the policy also samples K answers (temperature 0.8, seeded per prompt and dimension) under each
stated text named by `--sampled`, and the target is the candidate, greedy or sampled, that passes the checks above and
scores highest on its dimension: the target may then move further than the policy's own greedy answer does.
`--min-gain G` keeps a target only where it beats the neutral answer by G standard deviations of its dimension's
scores over all neutral answers, so that a move the judge's noise would make does not become a target.
With `--stated-method metaalign-pad` the stated answers (greedy and sampled) are written by PAD with the default
PersRM on top of the policy, which moves its dimensions further than the policy alone; neutral answers stay the
policy's own. `--stated-method metaalign-cfg` writes them with the policy's User Info amplified (classifier-free
guidance), `--stated-beta` weighing either guide. With `--also-pad` the policy's own greedy answers stay and PAD
writes one more candidate under each stated text: the target is then the better of the two by the judge (the policy's
own where they tie), so a dimension PAD moves less than the policy is not pulled back toward PAD's answer.

With `--priority DIR` (a `personalign data metaalign` directory holding Priority conflicts) the policy also answers a
seeded sample of its training conflicts (greedy, metaalign, `--priority-tokens`, the length the Priority measurement
reads), and each answer that keeps System Info's rule by the rule's own check and is clean becomes a target under its
meta-prompt: rehearsal, so that SFT on the distilled targets does not wear down the rule the policy already keeps.

Answers are appended to OUT/answers.jsonl as they are written, so a killed run resumes; a run with other settings is
refused. OUT/sft_train.jsonl and OUT/sft_valid.jsonl (a tenth of the prompts) are written at the end.
"""

import argparse
import json
import random
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from statistics import pstdev

from personalign import GenerationRequest, load_engine
from personalign.answer_checks import degenerate
from personalign.catalog import lookup
from personalign.data.metaalign import read_meta_pairs
from personalign.data.metaalign_synth import PSOUPS_PERSONAS
from personalign.data.priority import obeys
from personalign.data.prompt_sets import load_prompts
from personalign.evaluation.judges.offline import OfflineJudge
from personalign.evaluation.judges.relevance import RelevanceJudge
from personalign.meta_prompt import DEFAULT_SYSTEM_INFO

MORE_BACKGROUNDS = {
    "elementary": ("I'm in second grade.", "My teacher says I read at a first-grade level.",
                   "I'm seven and I like dinosaurs.", "I'm learning English and only know simple words.",
                   "I'm a little kid using my mom's phone.", "I'm ten and this is for a school project.",
                   "I'm in elementary school.", "Big words confuse me.", "I'm a child.", "I just learned to read.",
                   "I'm a third-grader.", "Please remember I'm only six.", "I'm a young boy who loves cartoons."),
    "expert": ("I'm a tenured chemist at a research university.", "I'm an engineer with twenty years in the industry.",
               "I review papers for scientific journals.", "I hold two doctorates.", "I'm a surgeon.",
               "I work as a quantitative analyst at a hedge fund.", "I'm a lawyer who argues before the supreme court.",
               "I'm an academic and I want technical depth.", "I design compilers for a living.",
               "I'm a veteran economist.", "I'm a postdoctoral researcher.", "I'm a domain expert; skip the basics.",
               "I lecture at a medical school."),
    "concise": ("I only have a few seconds.", "Just give me the short version.", "Long answers bore me.",
                "I skim everything.", "I'm on a tight deadline.", "I have no time for details.",
                "I'm about to board a plane.", "I'm a busy executive.", "I have a short attention span.",
                "I'm reading this on a smartwatch.", "I'm between two meetings.", "My time is very limited today.",
                "I hate walls of text."),
    "informative": ("I'm researching this for a long essay.", "I want every detail you can give.",
                    "I'm preparing a lecture and need lots of material.", "I'm a journalist gathering background.",
                    "I have all day and love long explanations.", "I'm writing a book on this subject.",
                    "I'm studying for an exam and need everything covered.", "Short answers never tell me enough.",
                    "I want to understand the topic in depth.",
                    "I'm a lifelong learner who reads encyclopedias for fun.", "I'm compiling a detailed guide.",
                    "I'm a documentary maker collecting facts.",
                    "I'm planning carefully and need thorough information."),
    "friendly": ("I'm lonely and would love a warm chat.", "I had a bad day at work.",
                 "I love jokes and a cheerful tone.", "Talk to me like a good buddy.",
                 "I'm nervous and could use some kindness.", "I'm a happy person who likes enthusiasm.",
                 "My friends say I'm the life of the party.", "I feel sad today.", "Encouragement helps me a lot.",
                 "I enjoy upbeat, playful conversations.", "Humor makes my day.", "I'm going through a tough time.",
                 "A smile in your words would mean a lot."),
    "unfriendly": ("I hate small talk.", "Skip the pleasantries.", "Being nice to me is a waste of time.",
                   "I'm a drill sergeant.", "I prefer blunt, cold answers.", "Compliments annoy me.",
                   "Don't sugarcoat anything, I'm tough.", "I'm a cynical person who dislikes warmth.",
                   "Enthusiasm makes me cringe.", "Talk to me like a stern critic.",
                   "I'm an old sailor who hates fluff.", "Rudeness doesn't bother me; fake cheer does.",
                   "Treat me like a rival."),
}
BACKGROUNDS = {dim: PSOUPS_PERSONAS[dim] + more for dim, more in MORE_BACKGROUNDS.items()}
NEUTRAL_ANSWERED = "No special requests."  # the User Info the neutral answers are written under
NEUTRALS = (NEUTRAL_ANSWERED, "Nothing in particular about me.", "Just answer normally.")
BACKGROUNDS_PER_TARGET = 4
MIN_CLOSENESS = 0.85
BATCH = 25
SAMPLE_TEMPERATURE = 0.8
PAD_TAG = "~pad"  # the tag suffix of a stated answer PAD wrote beside the policy's own (--also-pad)


def user_infos(settings: dict) -> list[tuple[str, str]]:
    """(tag, User Info): the greedy answers' tags are neutral and each dimension, a sample's is DIM~N."""
    dims = settings.get("dimensions", list(BACKGROUNDS))
    greedy = [("neutral", NEUTRAL_ANSWERED)] + [(dim, lookup(dim).text) for dim in dims]
    padded = [(f"{dim}{PAD_TAG}", lookup(dim).text) for dim in dims] if settings.get("also_pad") else []
    return greedy + padded + [(f"{dim}~{n}", lookup(dim).text) for dim in settings.get("sampled", ())
                              for n in range(1, settings.get("samples", 0) + 1)]


def _dimension(tag: str) -> str:
    return tag.split("~")[0]


def _request(prompt, tag: str, user_info: str, settings: dict) -> GenerationRequest:
    padded = tag.endswith(PAD_TAG)
    sampled = tag != _dimension(tag) and not padded
    method = "metaalign" if tag == "neutral" else "metaalign-pad" if padded else \
        settings.get("stated_method", "metaalign")
    beta = settings.get("stated_beta", 1.0) if method == settings.get("stated_method") else 1.0
    return GenerationRequest(prompt.prompt, user_info, method=method, max_new_tokens=settings["max_new_tokens"],
                             beta=beta, temperature=SAMPLE_TEMPERATURE if sampled else 0.0,
                             seed=zlib.crc32(f"{prompt.id}|{tag}".encode()) if sampled else None)


def record_settings(out: Path, settings: dict) -> None:
    """Refuse a directory written with other settings: a resumed run never mixes in answers made otherwise."""
    recorded = out / "settings.json"
    if recorded.is_file() and json.loads(recorded.read_text()) != settings:
        raise SystemExit(f"{out} holds answers written with other settings ({recorded}); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    recorded.write_text(json.dumps(settings, indent=2) + "\n")


def load_writer(settings: dict):
    """The engine that writes every answer: the policy, with the default PersRM where PAD writes some."""
    pad = settings.get("stated_method") == "metaalign-pad" or settings.get("also_pad")
    return load_engine(persrm=None if pad else "untrained", policy=settings["policy"])


def write_answers(engine, out: Path, settings: dict) -> list[dict]:
    """The policy's answers (greedy, and sampled where asked), appended per batch and read back by a resumed run."""
    path = out / "answers.jsonl"
    done = {(r["prompt_id"], r["tag"]) for r in map(json.loads, path.open())} if path.is_file() else set()
    prompts = load_prompts(settings["prompts"])
    random.Random(settings["seed"]).shuffle(prompts)
    prompts = prompts[:settings["limit"]]
    for start in range(0, len(prompts), BATCH):
        chunk = prompts[start:start + BATCH]
        for tag, user_info in user_infos(settings):
            todo = [p for p in chunk if (p.id, tag) not in done]
            if not todo:
                continue
            results = engine.generate([_request(p, tag, user_info, settings) for p in todo])
            with path.open("a") as f:
                for prompt, result in zip(todo, results):
                    f.write(json.dumps(dict(prompt_id=prompt.id, prompt=prompt.prompt, tag=tag, text=result.text,
                                            truncated=result.finish_reason == "length")) + "\n")
        print(f"answers: {min(start + BATCH, len(prompts))}/{len(prompts)} prompts", flush=True)
    return [json.loads(line) for line in path.open()]


def priority_contexts(settings: dict) -> list[dict]:
    """A seeded sample of the distinct training Priority conflicts of settings["priority"] (meta-prompt and prompt)."""
    contexts = {}
    for pair in read_meta_pairs(Path(settings["priority"]) / "train.jsonl"):
        if pair.rule:
            context = dict(preference=pair.preference, system_info=pair.system_info, user_info=pair.user_info,
                           prompt=pair.prompt, rule=pair.rule, params=pair.params)
            key = json.dumps([pair.system_info, pair.user_info, pair.prompt])
            contexts.setdefault(key, context | dict(key=f"{zlib.crc32(key.encode()):08x}"))
    chosen = sorted(contexts.values(), key=lambda c: c["key"])
    random.Random(settings["seed"]).shuffle(chosen)
    return chosen[:settings["priority_limit"]]


def write_priority_answers(engine, out: Path, settings: dict) -> list[dict]:
    """The policy's greedy answers to the sampled Priority conflicts, appended per batch; a resumed run reads them."""
    path = out / "priority_answers.jsonl"
    done = {r["key"] for r in map(json.loads, path.open())} if path.is_file() else set()
    todo = [c for c in priority_contexts(settings) if c["key"] not in done]
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        results = engine.generate([GenerationRequest(c["prompt"], c["user_info"], method="metaalign",
                                                     system_info=c["system_info"],
                                                     max_new_tokens=settings["priority_tokens"]) for c in chunk])
        with path.open("a") as f:
            for context, result in zip(chunk, results):
                f.write(json.dumps(context | dict(text=result.text, truncated=result.finish_reason == "length"))
                        + "\n")
        print(f"priority answers: {len(done) + start + len(chunk)}/{len(done) + len(todo)}", flush=True)
    return [json.loads(line) for line in path.open()] if path.is_file() else []


def priority_examples(answers: list[dict]) -> tuple[dict[str, list[dict]], Counter]:
    """Train and valid SFT examples (a tenth of the prompts) from the answers that keep their rule, cleanly."""
    splits, kept = {"train": [], "valid": []}, Counter()
    for answer in answers:
        if not answer["text"] or degenerate(answer["text"]) or \
                not obeys(answer["rule"], answer["params"], answer["text"]):
            continue
        kept[answer["rule"]] += 1
        split = "valid" if zlib.crc32(json.dumps(answer["prompt"]).encode()) % 10 == 0 else "train"
        splits[split].append(dict(preference=answer["preference"], system_info=answer["system_info"],
                                  user_info=answer["user_info"], prompt=answer["prompt"], response=answer["text"],
                                  subset="priority", explicit=True, truncated=answer["truncated"]))
    return splits, kept


def sft_examples(answers: list[dict], min_gain: float = 0.0) -> tuple[dict[str, list[dict]], Counter]:
    """Train and valid SFT examples (split by prompt) and the kept targets per dimension (module docstring): a target
    must beat the neutral answer by `min_gain` standard deviations of its dimension over the neutral answers."""
    by_prompt = defaultdict(dict)
    for answer in answers:
        by_prompt[answer["prompt_id"]][answer["tag"]] = answer
    judge, relevance = OfflineJudge(), RelevanceJudge()
    neutrals = [answered["neutral"]["text"] for answered in by_prompt.values()]
    spread = {dim: pstdev(judge.score(dim, [""] * len(neutrals), neutrals)) for dim in BACKGROUNDS}
    ids = sorted(by_prompt)
    random.Random(0).shuffle(ids)
    valid = set(ids[:len(ids) // 10])
    splits, kept = {"train": [], "valid": []}, Counter()
    for prompt_id in ids:
        answered = by_prompt[prompt_id]
        neutral, split = answered["neutral"], splits["valid" if prompt_id in valid else "train"]
        if neutral["text"] and not degenerate(neutral["text"]):
            split.append(_example(neutral, random.Random(prompt_id).choice(NEUTRALS), "none", explicit=True))
        tags = [tag for tag in answered if tag != "neutral"]
        closeness = dict(zip(["neutral"] + tags, relevance.score_many(
            [neutral["prompt"]] * (len(tags) + 1), [neutral["text"]] + [answered[tag]["text"] for tag in tags])))
        for dim in dict.fromkeys(map(_dimension, tags)):
            candidates = [answered[tag] for tag in tags if _dimension(tag) == dim and answered[tag]["text"]
                          and not degenerate(answered[tag]["text"])
                          and closeness[tag] >= MIN_CLOSENESS * closeness["neutral"]]
            if not candidates:
                continue
            scores = judge.score(dim, [""] * len(candidates), [c["text"] for c in candidates])
            stated = candidates[max(range(len(candidates)), key=scores.__getitem__)]  # the first of equals: greedy
            if max(scores) <= judge.score(dim, [""], [neutral["text"]])[0] + min_gain * spread[dim]:
                continue
            kept[dim] += 1
            if stated["tag"].endswith(PAD_TAG):
                kept[f"{dim} by PAD"] += 1
            split.append(_example(stated, lookup(dim).text, f"psoups:{dim}", explicit=True))
            backgrounds = random.Random(f"{prompt_id}{dim}").sample(BACKGROUNDS[dim], BACKGROUNDS_PER_TARGET)
            split += [_example(stated, background, f"psoups:{dim}", explicit=False) for background in backgrounds]
    for examples in splits.values():
        random.Random(1).shuffle(examples)
    return splits, kept


def _example(answer: dict, user_info: str, preference: str, explicit: bool) -> dict:
    return dict(preference=preference, system_info=DEFAULT_SYSTEM_INFO, user_info=user_info,
                prompt=answer["prompt"], response=answer["text"], subset="diverse", explicit=explicit,
                truncated=answer["truncated"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--policy", default=None, help="the policy that writes the answers (default: the shipped one)")
    parser.add_argument("--prompts", default="ultrachat_short")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=5, help="seed of the prompt sample")
    parser.add_argument("--samples", type=int, default=0, help="sampled answers per stated text, beside the greedy one")
    parser.add_argument("--hold-out", default="", help="comma-separated P-SOUPS preference ids (psoups:DIM, as in "
                        "`data metaalign --hold-out`) never answered or distilled")
    parser.add_argument("--sampled", default=None, help="comma-separated dimensions to sample (default: all distilled)")
    parser.add_argument("--stated-method", choices=("metaalign", "metaalign-pad", "metaalign-cfg"),
                        default="metaalign",
                        help="the method that writes the stated answers (neutral ones are always metaalign)")
    parser.add_argument("--stated-beta", type=float, default=1.0, help="its beta (metaalign-pad, metaalign-cfg)")
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="a target beats the neutral answer by this many standard deviations of its dimension")
    parser.add_argument("--also-pad", action="store_true",
                        help="PAD over the policy writes one more stated candidate; the judge picks the target")
    parser.add_argument("--priority", default=None,
                        help="a `personalign data metaalign` directory whose training Priority conflicts to rehearse")
    parser.add_argument("--priority-limit", type=int, default=300, help="how many of its conflicts the policy answers")
    parser.add_argument("--priority-tokens", type=int, default=96)
    args = parser.parse_args()
    held = {held for held in args.hold_out.split(",") if held}
    dims = [dim for dim in BACKGROUNDS if f"psoups:{dim}" not in held]
    if not dims or held - {f"psoups:{dim}" for dim in BACKGROUNDS}:
        parser.error(f"--hold-out names some of psoups:{', psoups:'.join(BACKGROUNDS)}, not all")
    sampled = dims if args.sampled is None else [dim for dim in args.sampled.split(",") if dim]
    if args.samples < 0 or not set(sampled) <= set(dims):
        parser.error("--samples is 0 or more and --sampled names dimensions not held out")
    out = Path(args.out)
    settings = dict(policy=args.policy, prompts=args.prompts, limit=args.limit, max_new_tokens=args.max_new_tokens,
                    seed=args.seed)
    if dims != list(BACKGROUNDS):  # all six stay unrecorded, so directories written before still resume
        settings |= dict(dimensions=dims)
    if args.samples:  # settings of greedy-only runs stay as they were, so their directories still resume
        settings |= dict(samples=args.samples, sampled=sampled, temperature=SAMPLE_TEMPERATURE)
    if args.stated_method != "metaalign":
        settings |= dict(stated_method=args.stated_method)
    if args.stated_beta != 1.0:  # the default beta stays unrecorded, so directories written before still resume
        if args.stated_method == "metaalign":
            parser.error("--stated-beta weighs the guide of metaalign-pad or metaalign-cfg: name one")
        settings |= dict(stated_beta=args.stated_beta)
    if args.also_pad:
        if args.stated_method == "metaalign-pad":
            parser.error("--also-pad adds PAD's answers beside the policy's own: leave --stated-method at metaalign")
        settings |= dict(also_pad=True)
    if args.priority:
        if args.priority_limit < 1 or not (Path(args.priority) / "train.jsonl").is_file():
            parser.error("--priority names a `personalign data metaalign` directory and --priority-limit is 1 or more")
        settings |= dict(priority=args.priority, priority_limit=args.priority_limit,
                         priority_tokens=args.priority_tokens)
    record_settings(out, settings)
    engine = load_writer(settings)
    splits, kept = sft_examples(write_answers(engine, out, settings), args.min_gain)
    if args.priority:
        rehearsed, kept_rules = priority_examples(write_priority_answers(engine, out, settings))
        for split, examples in rehearsed.items():
            splits[split] += examples
            random.Random(2).shuffle(splits[split])
        print(f"Priority answers keeping their rule: {dict(kept_rules)}")
    for split, examples in splits.items():
        with (out / f"sft_{split}.jsonl").open("w") as f:
            f.writelines(json.dumps(example) + "\n" for example in examples)
    print(f"kept targets per dimension: {dict(kept)}; SFT examples: "
          f"{', '.join(f'{split} {len(examples)}' for split, examples in splits.items())}")


if __name__ == "__main__":
    main()
