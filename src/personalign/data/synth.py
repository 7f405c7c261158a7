"""Preference pairs synthesized in the P-SOUPS manner: roll out the base model under each preference prompt and a
neutral one, judge the rollouts of each prompt per preference, and keep the best-vs-worst pair where the judge
sees a clear margin.

Two stages, so that a killed run loses at most one batch:
    rollouts.jsonl   append-only, one line per (prompt, preference it was written under); finished ids skipped
    pairs.jsonl      rebuilt from all rollouts at the end (judging is cheap next to decoding), written atomically
    loop_pairs.jsonl rebuilt with it: looped twins of some pairs (below)
    offtopic_pairs.jsonl  rebuilt with it: off-topic twins of some pairs (below)
    onpolicy_pairs.jsonl  rebuilt with it, with --on-policy: PAD's own failures rejected (below)

The candidates of a prompt are its neutral rollout and its rollouts under every preference asked of it (`samples` of
each, seeded apart): the six P-SOUPS dimensions (judged by the offline judge: reading grade, word counts, sentiment)
and a few free-text preferences drawn for that prompt (judged by the relevance judge). For each preference the best
and the worst candidate by that judge form the pair; the margin is in units of that judge's spread over all
rollouts, so one threshold serves judges whose scales differ. A degenerate rollout (one that copies PAD's prompt
template back, or repeats itself) may be a pair's rejected answer but never its chosen one: the proxy judges like
the preference words an echo repeats and the short words of a loop, and a PersRM trained on such pairs learns to
reward both. Nor may an answer that leaves the question: VADER likes "Awesome! I'm happy to help!" whatever was
asked, and the relevance judge likes talk about the preference. An answer is on the question when its MiniLM
similarity to the prompt is at least `min_on_question` times that of the prompt's neutral rollout (which answers it
plainly). The preference rollouts are written with preference prompting (`method` "prompt": the preference in PAD's
template, what a PersRM learns from) or read as MetaAlign's User Info (`method` "meta-prompting"): answers a
MetaAlign policy learns in the very context it will read (a target written under PAD's template owes nothing to the
User Info block). Each pair names the rollouts it holds (`chosen_id`, `rejected_id`) and the preference each was
written under.
Each pair says whether its rejected answer could have been chosen (`rejected_may_be_chosen`), for label flipping,
and whether each answer stopped by itself rather than at `max_new_tokens` (`chosen_ends`, `rejected_ends`): the
PersRM then scores the end of turn too, and learns when a preference wants the answer to stop.

Loop pairs (loop_pairs.jsonl, for training only: `train-rm --train-only`): PAD decodes greedily under the PersRM's
reward, so a reward that likes some phrase for a preference makes the answer repeat it. For a share of the pairs
(`loop_pairs`), a twin keeps the chosen answer and rejects a looped copy of it: its own opening, then a few of its
words over and over. The two share their opening, so the token-level reward can only tell them apart where the loop
starts: every preference learns that repeating itself is worse. They are kept apart from pairs.jsonl so that
held-out accuracy stays a measure of the preferences, not of this easy contrast.

Off-topic pairs (offtopic_pairs.jsonl, for training only, kept apart for the same reason): a reward that likes a
preference's own words pulls PAD's answers toward talk about the preference and away from the question. For a
share of the pairs (`offtopic_pairs`), a twin keeps the chosen answer and rejects the chosen answer of another
prompt under the same preference: both obey the preference, only one answers the question, so the reward learns
that the question comes first.

On-policy pairs (onpolicy_pairs.jsonl, `on_policy`, for training only): each prompt is also decoded with PAD
itself (the given PersRM, greedily, as PAD answers by default) under each dimension. Where PAD's answer loops,
echoes the template or leaves the question (the same checks as above), it is rejected against that pair's chosen
answer: the next PersRM learns from the failures of the current one. With `on_policy_margin`, so is a clean PAD
answer that the judge scores at least that many of its standard deviations (the pairs' scale) below the chosen one:
where PAD falls short of the preference without failing, it learns from the shortfall. The PersRM is named in
synth_config.json by its directory and a fingerprint of its files, so PAD rollouts of another PersRM are never
mixed in.
"""

import hashlib
import json
import random
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..answer_checks import degenerate, echoes_template, loops
from ..errors import PersonalignError
from ..flag_help import flag_help
from ..records import append_records, read_records, write_records_atomic
from ..sharding import Shards

PSOUPS_DIMENSIONS = ("elementary", "expert", "concise", "informative", "friendly", "unfriendly")
ROLLOUTS = "rollouts.jsonl"
PAIRS = "pairs.jsonl"
LOOP_PAIRS = "loop_pairs.jsonl"
OFFTOPIC_PAIRS = "offtopic_pairs.jsonl"
ONPOLICY_PAIRS = "onpolicy_pairs.jsonl"
NEUTRAL = "none"
ROLLOUT_METHODS = ("prompt", "meta-prompting")  # how a preference rollout is written (the neutral one: "base")
ADDED_SETTINGS = ("method", "samples")  # settings that synth_config.json files saved before them lack


@dataclass
class SynthConfig:
    prompts: str = field(default="helpsteer_short", metadata=flag_help("a prompt set or a JSONL file of prompts"))
    limit: int | None = field(default=160, metadata=flag_help("use the first N prompts"))
    dimensions: tuple[str, ...] = field(default=PSOUPS_DIMENSIONS, metadata=flag_help(
        "catalog dimensions judged by the offline judge, comma-separated ('' for none)"))
    free_text: tuple[str, ...] = ()  # free-text preferences to draw from (e.g. the Janus sample)
    free_per_prompt: int = field(default=3, metadata=flag_help("free-text preferences drawn per prompt"))
    max_new_tokens: int = field(default=48, metadata=flag_help("most tokens per rollout"))
    temperature: float = field(default=0.7, metadata=flag_help("sampling temperature of the rollouts"))
    method: str = field(default="prompt", metadata=flag_help(
        "how the preference rollouts are written: prompt (the preference in PAD's template) or meta-prompting (the "
        "preference as MetaAlign's User Info, for a policy's targets)", choices=ROLLOUT_METHODS))
    samples: int = field(default=1, metadata=flag_help(
        "rollouts per prompt and preference (the neutral one: one), each seeded apart; more candidates to pick the "
        "best of"))
    min_margin: float = field(default=1.0, metadata=flag_help(
        "keep a pair when the judge's best-worst gap is at least this many of its standard deviations over all "
        "rollouts"))
    loop_pairs: float = field(default=0.5, metadata=flag_help(
        "share of pairs that get a twin rejecting a looped copy of the chosen answer, written to loop_pairs.jsonl "
        "for train-rm --train-only"))
    offtopic_pairs: float = field(default=0.5, metadata=flag_help(
        "share of pairs that get a twin rejecting another prompt's chosen answer under the same preference, written "
        "to offtopic_pairs.jsonl for train-rm --train-only"))
    on_policy: str | None = field(default=None, metadata=flag_help(
        "also decode with PAD and this PersRM ('default': the one shipped for the base) under each dimension; its "
        "degenerate or off-question answers are rejected in onpolicy_pairs.jsonl, for train-rm --train-only"))
    on_policy_margin: float | None = field(default=None, metadata=flag_help(
        "with --on-policy, also reject PAD's clean answers that the judge scores at least this many standard "
        "deviations below the pair's chosen answer (none: only its failures)"))
    on_policy_identity: str | None = None  # the on-policy PersRM's directory and file fingerprint (the command's)
    min_on_question: float = field(default=0.5, metadata=flag_help(
        "an answer may be chosen only if its similarity to the prompt is at least this share of the prompt's neutral "
        "rollout's (0: no check)"))
    batch_size: int = field(default=8, metadata=flag_help("rollouts decoded together"))
    seed: int = field(default=0, metadata=flag_help("seed of the rollouts, the free-text draws and the loop twins"))
    data_dir: str | None = field(default=None, metadata=flag_help("shared data directory (none: $PERSONALIGN_DATA or "
                                                              "../shared/data)"))

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise PersonalignError(f"limit must be >= 1, got {self.limit}")
        if self.free_per_prompt < 0 or (self.free_per_prompt and not self.free_text):
            raise PersonalignError("free_per_prompt needs free-text preferences to draw from (--free-text)")
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.samples < 1:
            raise PersonalignError("max_new_tokens, batch_size and samples must be >= 1")
        if self.method not in ROLLOUT_METHODS:
            raise PersonalignError(f"method must be one of {', '.join(ROLLOUT_METHODS)}, got {self.method!r}")
        if self.min_margin < 0:
            raise PersonalignError(f"min_margin must be >= 0, got {self.min_margin}")
        if not 0 <= self.min_on_question <= 1:
            raise PersonalignError(f"min_on_question must be in [0, 1], got {self.min_on_question}")
        if self.on_policy_margin is not None and (self.on_policy_margin < 0 or not self.on_policy):
            raise PersonalignError(f"on_policy_margin must be >= 0 and needs on_policy, got {self.on_policy_margin}")
        for name in ("loop_pairs", "offtopic_pairs"):
            if not 0 <= getattr(self, name) <= 1:
                raise PersonalignError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.dimensions and not self.free_text:
            raise PersonalignError("no preferences to synthesize pairs for")


def janus_preferences(data_dir=None) -> list[str]:
    """The 102 example preferences of the Janus multifaceted taxonomy, in tree order."""
    from . import read_shared_json
    tree = read_shared_json("janus/multifaceted_preference_taxonomy_sample.json", data_dir)["tree"]
    return [text for subdims in tree.values() for texts in subdims.values() for text in texts]


def stable_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(map(str, parts)).encode()).digest()[:4], "big")


def free_text_for(prompt_id: str, config: SynthConfig) -> list[str]:
    """The free-text preferences drawn for one prompt: fixed by the prompt id and the seed."""
    rng = random.Random(stable_seed(config.seed, prompt_id))
    return rng.sample(list(config.free_text), min(config.free_per_prompt, len(config.free_text)))


def rollout_id(prompt_id: str, preference: str, sample: int = 0) -> str:
    """A rollout's id in rollouts.jsonl: its prompt, the preference it was written under and, past the first, which
    sample it is."""
    return f"{prompt_id}\t{preference}" + (f"\t#{sample}" if sample else "")


def plan_rollouts(prompts, config: SynthConfig) -> list[dict]:
    """Per prompt: one neutral job, then `samples` jobs under every dimension and each of the prompt's free-text
    draws."""
    jobs = []
    for item in prompts:
        jobs.append(dict(id=rollout_id(item.id, NEUTRAL), prompt_id=item.id, prompt=item.prompt, preference=NEUTRAL,
                         method="base"))
        for preference in (*config.dimensions, *free_text_for(item.id, config)):
            jobs += [dict(id=rollout_id(item.id, preference, k), prompt_id=item.id, prompt=item.prompt,
                          preference=preference, method=config.method) for k in range(config.samples)]
        for dim in config.dimensions if config.on_policy else ():
            jobs.append(dict(id=rollout_id(item.id, f"pad:{dim}"), prompt_id=item.id, prompt=item.prompt,
                             preference=dim, method="pad", temperature=0.0))
    return jobs


def roll_out(engine, jobs: list[dict], config: SynthConfig, path: Path, progress: bool = True) -> Shards:
    """Decode every job not yet in `path`, appending one record per job after each batch (several processes: each
    its share, merged at the end); returns the shards, which say whether this is the first process."""
    from ..decoding.request import GenerationRequest

    shards = Shards(path)  # under torchrun / accelerate launch, each process decodes a share
    done = {r["id"] for r in shards.done()}
    todo = shards.mine([j for j in jobs if j["id"] not in done])
    bar = tqdm(total=len(todo), desc="rollouts", unit="rollout", disable=not progress)
    for start in range(0, len(todo), config.batch_size):
        batch = todo[start:start + config.batch_size]
        requests = [GenerationRequest(j["prompt"], preference=None if j["preference"] == NEUTRAL else j["preference"],
                                      method=j["method"],
                                      max_new_tokens=config.max_new_tokens,
                                      temperature=j.get("temperature", config.temperature),
                                      seed=stable_seed(config.seed, j["id"])) for j in batch]
        results = engine.generate(requests)
        append_records(shards.target(), [dict(job, text=r.text.strip(), finish_reason=r.finish_reason)
                                         for job, r in zip(batch, results)])
        bar.update(len(batch))
    bar.close()
    shards.merge("id", [j["id"] for j in jobs])
    return shards


def looped(text: str, rng: random.Random, min_words: int = 24) -> str | None:
    """A looped copy of `text`: its first sixth to third of words, then its last 2-5 of those repeated until the
    copy is at least as long as `text` (and `min_words`) and counts as a loop. None for texts under 6 words."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if len(spans) < 6:
        return None
    keep = rng.randint(max(2, len(spans) // 6), max(2, len(spans) // 3))
    size = rng.randint(2, min(5, keep))
    unit = text[spans[keep - size][0]:spans[keep - 1][1]]
    out, words = text[:spans[keep - 1][1]], keep
    while words < max(len(spans), min_words) or not loops(out):
        out, words = out + " " + unit, words + size
    return out


def loop_twins(pairs: list[dict], share: float, seed: int) -> list[dict]:
    """For a seeded `share` of `pairs`, a pair keeping the chosen answer and rejecting a looped copy of it."""
    twins = []
    for pair in pairs:
        rng = random.Random(stable_seed(seed, "loop", pair["prompt_id"], pair["preference"]))
        if rng.random() >= share or (rejected := looped(pair["chosen"], rng)) is None:
            continue
        twins.append(dict(pair, rejected=rejected, judge="loop", margin=None, rejected_under="loop",
                          rejected_id=None, rejected_ends=False))
    return twins


def offtopic_twins(pairs: list[dict], share: float, seed: int) -> list[dict]:
    """For a seeded `share` of `pairs`, a pair keeping the chosen answer and rejecting the chosen answer of another
    prompt under the same preference: an answer that obeys the preference but not the question."""
    by_preference: dict[str, list[dict]] = {}
    for pair in pairs:
        by_preference.setdefault(pair["preference"], []).append(pair)
    twins = []
    for pair in pairs:
        rng = random.Random(stable_seed(seed, "offtopic", pair["prompt_id"], pair["preference"]))
        others = [p for p in by_preference[pair["preference"]] if p["prompt_id"] != pair["prompt_id"]]
        if rng.random() >= share or not others:
            continue
        other = rng.choice(others)
        twins.append(dict(pair, rejected=other["chosen"], judge="offtopic", margin=None, rejected_under="offtopic",
                          rejected_id=other["chosen_id"], rejected_prompt_id=other["prompt_id"],
                          rejected_ends=other["chosen_ends"]))
    return twins


def onpolicy_pairs(pairs: list[dict], pad_rollouts: list[dict], rollouts: list[dict], min_on_question: float,
                   relevance_judge, shortfall=None) -> list[dict]:
    """PAD's answers that loop, echo the template or leave the question, each rejected against the chosen answer of
    the pair of its prompt and preference (see the module docstring). `shortfall(chosen pairs, PAD records)` -> per
    record, whether the judge finds it clearly worse than its pair's chosen answer (those become "judged worse")."""
    chosen = {(p["prompt_id"], p["preference"]): p for p in pairs}
    neutral = {r["prompt_id"]: r["text"] for r in rollouts if r["preference"] == NEUTRAL and r["text"]}
    todo = [r for r in pad_rollouts if r["text"] and (r["prompt_id"], r["preference"]) in chosen]
    off = leaves_question(todo, neutral, min_on_question, relevance_judge)
    flaws = [("echo" if echoes_template(r["text"]) else "loop" if loops(r["text"]) else "off-question" if leaves
              else None) for r, leaves in zip(todo, off)]
    if shortfall is not None:
        clean = [r for r, flaw in zip(todo, flaws) if flaw is None]
        worse = iter(shortfall([chosen[(r["prompt_id"], r["preference"])] for r in clean], clean))
        flaws = [flaw or ("judged worse" if next(worse) else None) for flaw in flaws]
    return [dict(chosen[(r["prompt_id"], r["preference"])], rejected=r["text"], judge="on-policy", margin=None,
                 rejected_under="pad", rejected_id=r["id"], rejected_flaw=flaw, rejected_ends=_ended(r))
            for r, flaw in zip(todo, flaws) if flaw]


def judged_shortfall(offline_judge, spread: dict[str, float], margin: float):
    """The `shortfall` check of onpolicy_pairs for dimension pairs: the PAD answer scores at least `margin` of the
    dimension's spread (build_pairs' scale) below the chosen answer."""
    def check(chosen_pairs: list[dict], pad: list[dict]) -> list[bool]:
        verdicts = []
        for pair, record in zip(chosen_pairs, pad):
            dim = pair["preference"]
            chosen_score, pad_score = offline_judge.score(dim, [pair["prompt"]] * 2, [pair["chosen"], record["text"]])
            verdicts.append((chosen_score - pad_score) / spread[dim] >= margin)
        return verdicts
    return check


def build_pairs(rollouts: list[dict], config: SynthConfig, offline_judge, relevance_judge) -> tuple[list[dict], dict]:
    """Best-vs-worst pairs per (prompt, preference) with a clear judged margin (see the module docstring), and each
    judge measure's spread over all rollouts (the margins' unit: per offline dimension, and one for free text)."""
    by_prompt: dict[str, list[dict]] = {}
    for record in rollouts:
        if record["text"]:
            by_prompt.setdefault(record["prompt_id"], []).append(record)
    scored = []  # (prompt_id, preference, judge name, [scores of that prompt's candidates])
    for dim in config.dimensions:
        for prompt_id, cands in by_prompt.items():
            texts = [c["text"] for c in cands]
            scored.append((prompt_id, dim, "offline", offline_judge.score(dim, [cands[0]["prompt"]] * len(texts), texts)))
    free = [(pid, pref) for pid, cands in by_prompt.items() for pref in dict.fromkeys(
        c["preference"] for c in cands if c["preference"] not in (NEUTRAL, *config.dimensions))]
    if free:
        flat_prefs = [pref for pid, pref in free for _ in by_prompt[pid]]
        flat_texts = [c["text"] for pid, _ in free for c in by_prompt[pid]]
        flat = relevance_judge.score_many(flat_prefs, flat_texts)
        at = 0
        for pid, pref in free:
            n = len(by_prompt[pid])
            scored.append((pid, pref, "relevance", flat[at:at + n]))
            at += n
    # one scale per judge measure: each offline dimension has its own, all free text shares the relevance one
    scale_of = lambda pref, judge: pref if judge == "offline" else judge
    values: dict[str, list[float]] = {}
    for _, pref, judge, scores in scored:
        values.setdefault(scale_of(pref, judge), []).extend(scores)
    spread = {key: max(statistics.pstdev(v), 1e-9) for key, v in values.items()}
    may_choose = _may_be_chosen(by_prompt, config.min_on_question, relevance_judge)
    pairs = []
    for prompt_id, pref, judge, scores in scored:
        cands = by_prompt[prompt_id]
        usable = [i for i in range(len(cands)) if may_choose[prompt_id][i]]
        if not usable:
            continue
        best = max(usable, key=scores.__getitem__)
        worst = min(range(len(cands)), key=scores.__getitem__)
        margin = (scores[best] - scores[worst]) / spread[scale_of(pref, judge)]
        if margin < config.min_margin or cands[best]["text"].strip() == cands[worst]["text"].strip():
            continue
        pairs.append(dict(preference=pref, prompt=cands[best]["prompt"], chosen=cands[best]["text"],
                          rejected=cands[worst]["text"], source="synth", judge=judge, margin=round(margin, 3),
                          prompt_id=prompt_id, chosen_id=cands[best]["id"], rejected_id=cands[worst]["id"],
                          chosen_under=cands[best]["preference"],
                          rejected_under=cands[worst]["preference"],
                          rejected_may_be_chosen=may_choose[prompt_id][worst],
                          chosen_ends=_ended(cands[best]), rejected_ends=_ended(cands[worst])))
    return pairs, spread


def _ended(rollout: dict) -> bool:
    """Whether a rollout stopped by itself (its end of turn is part of the answer) rather than at the token limit."""
    return rollout.get("finish_reason") == "eos"


def _may_be_chosen(by_prompt: dict[str, list[dict]], min_on_question: float, relevance_judge) -> dict:
    """prompt id -> per candidate: not degenerate, and on the question (see the module docstring; a prompt without
    a neutral rollout is not checked)."""
    neutral = {pid: c["text"] for pid, cands in by_prompt.items() for c in cands if c["preference"] == NEUTRAL}
    flat = [c for cands in by_prompt.values() for c in cands]
    off = iter(leaves_question(flat, neutral, min_on_question, relevance_judge))
    # every candidate takes its own verdict from `off`, degenerate or not, so that the two stay in step
    return {pid: [not leaves and not degenerate(c["text"]) for c, leaves in zip(cands, off)]
            for pid, cands in by_prompt.items()}


def leaves_question(answers: list[dict], neutral: dict[str, str], share: float, relevance_judge) -> list[bool]:
    """Per rollout record: whether it leaves its question, its MiniLM similarity to the prompt under `share` times
    that of the prompt's neutral rollout (`neutral`: prompt id -> its text). Not checked (False): a prompt without a
    neutral rollout, or a share of 0. One embedding pass, each neutral rollout once."""
    checked = [a for a in answers if a["prompt_id"] in neutral] if share else []
    if not checked:
        return [False] * len(answers)
    prompt_of = {a["prompt_id"]: a["prompt"] for a in checked}
    sims = relevance_judge.score_many([a["prompt"] for a in checked] + list(prompt_of.values()),
                                      [a["text"] for a in checked] + [neutral[pid] for pid in prompt_of])
    bar = {pid: share * sim for pid, sim in zip(prompt_of, sims[len(checked):])}
    off = iter(sim < bar[a["prompt_id"]] for a, sim in zip(checked, sims))
    return [next(off) if a["prompt_id"] in neutral else False for a in answers]


def synthesize(config: SynthConfig, out, engine, offline_judge, relevance_judge=None, progress: bool = True) -> dict:
    """Run (or resume) synthesis into `out`; returns counts per preference kind (empty in processes but the first,
    under torchrun or accelerate launch). `engine` decodes the rollouts (the
    base with an untrained PersRM), `offline_judge` judges the dimensions and `relevance_judge` the free text
    (needed when there is some); the command wires them, so this layer needs nothing of evaluation's."""
    from .prompt_sets import load_prompts

    config.validate()
    if (config.free_text or config.min_on_question) and relevance_judge is None:
        raise PersonalignError("free-text preferences and the on-question check need a relevance judge")
    prompts = load_prompts(config.prompts, config.limit, config.data_dir)
    if not prompts:
        raise PersonalignError(f"no prompts in {config.prompts!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_config(out, config)
    jobs = plan_rollouts(prompts, config)
    if not roll_out(engine, jobs, config, out / ROLLOUTS, progress).is_main:
        return {}  # the first process judges and pairs what every process rolled out
    wanted = {j["id"] for j in jobs}
    records = [r for r in read_records(out / ROLLOUTS) if r["id"] in wanted]
    pad = [r for r in records if r.get("method") == "pad"]
    records = [r for r in records if r.get("method") != "pad"]
    pairs, spread = build_pairs(records, config, offline_judge, relevance_judge)
    twins = loop_twins(pairs, config.loop_pairs, config.seed)
    offtopic = offtopic_twins(pairs, config.offtopic_pairs, config.seed)
    write_records_atomic(out / PAIRS, pairs)
    write_records_atomic(out / LOOP_PAIRS, twins)
    write_records_atomic(out / OFFTOPIC_PAIRS, offtopic)
    if config.on_policy:
        shortfall = None if config.on_policy_margin is None else \
            judged_shortfall(offline_judge, spread, config.on_policy_margin)
        failures = onpolicy_pairs(pairs, pad, records, config.min_on_question, relevance_judge, shortfall)
        write_records_atomic(out / ONPOLICY_PAIRS, failures)
    counts = {"rollouts": len(records), "pairs": len(pairs),
              "dimension pairs": sum(p["judge"] == "offline" for p in pairs),
              "free-text pairs": sum(p["judge"] == "relevance" for p in pairs),
              "loop pairs": len(twins), "off-topic pairs": len(offtopic)}
    if config.on_policy:
        counts.update({"PAD rollouts": len(pad), "on-policy pairs": len(failures),
                       "of them judged worse": sum(f["rejected_flaw"] == "judged worse" for f in failures)})
    return counts


def _check_same_config(out: Path, config: SynthConfig) -> None:
    """Resuming with other settings would mix two kinds of rollouts in one file: refuse it. The settings that only
    shape pairs (margin, twin shares, on-question share) may change: the pairs are rebuilt from the rollouts on every
    run."""
    path = out / "synth_config.json"
    free = ("batch_size", "limit", "data_dir", "min_margin", "loop_pairs", "offtopic_pairs", "min_on_question",
            "on_policy", "on_policy_identity", "on_policy_margin")
    settings = {k: v for k, v in config.__dict__.items() if k not in free}
    # runs from before these settings existed made their rollouts as the defaults do
    defaults = {name: SynthConfig.__dataclass_fields__[name].default for name in ADDED_SETTINGS}
    before = refuse_other_settings(path, settings, "a synthesis", earlier=defaults)
    # PAD rollouts may be added to a finished run, but only ever those of one PersRM
    identity = before.get("on_policy_identity")
    if config.on_policy and identity not in (None, config.on_policy_identity):
        raise PersonalignError(f"{out} holds PAD rollouts of another PersRM or rule ({identity}); use another "
                               "--out or that PersRM")
    if config.on_policy and identity is None:
        path.write_text(json.dumps({**before, "on_policy_identity": config.on_policy_identity}, indent=2) + "\n")


def refuse_other_settings(path: Path, settings: dict, what: str, earlier: dict | None = None) -> dict:
    """The settings an earlier run saved at `path` (these `settings`, saved now, for a first run). A run whose
    settings differ is refused, naming them: its records would mix with `what` made another way. `earlier`: the
    values of settings added since, for files saved before them."""
    settings = json.loads(json.dumps(settings))
    if not path.exists():
        path.write_text(json.dumps(settings, indent=2) + "\n")
        return settings
    before = {**(earlier or {}), **json.loads(path.read_text())}
    changed = sorted(k for k in settings if before.get(k) != settings[k])
    if changed:
        raise PersonalignError(f"{path.parent} holds {what} with other settings ({', '.join(changed)}); "
                               "use another --out or the same settings")
    return before
