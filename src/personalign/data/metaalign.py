"""MetaAlign's training data (PAD_SPEC section 5): response pairs under three-tier meta-prompts, whose labels flip
with the meta-prompt, built from data the project already reads. Four subsets, as in the paper:

- diverse (Diverse-Opinion / personal background): DSP's 661 queries, each answered in four domain styles and
  plainly. A user of domain d prefers the d answer to each other domain's and to the plain one, stated explicitly
  (converters.DSP_PREFERENCES) or implicitly by a background (`PERSONAS`: "I teach literature at a university").
  Every pair of two styles appears in both orders, under the two domains' preferences.
- consensus: the same queries' plain answer (Alpaca's original) against each styled one, for a user who wants the
  widely accepted answer: the same pair flips under that style's domain preference (diverse), so neither "styled
  wins" nor "plain wins" holds without reading the meta-prompt. HHH's "other" pairs.
- helpful (Helpful-based): HH helpfulness pairs and HHH's helpful / honest / harmless pairs, each under a User
  Info that prioritizes that quality.
- diverse also takes `personalign data synth` runs (`--synth DIR`, repeatable, metaalign_synth.py): the six
  P-SOUPS dimensions, each pair flipped under its axis' opposite, explicit and implied by a background, and the
  Janus free-text preferences; with `--twins`, also each run's loop and off-topic twins. Each run's pairs are
  ranked within its own rollouts (say, one written under the meta-prompt and one under PAD's template).
- diverse also takes a `personalign data constraints` run (`--constraints DIR`, metaalign_constraints.py): content
  and constraint preferences ("I'm vegetarian"), each pair also flipped under a constraint that rules out the chosen
  answer's item.
- priority: System Info sets a rule an offline check verifies (priority.py: a word limit, prose without lists, a
  formal register, refusing harm), User Info asks for the opposite, and the chosen answer obeys System Info: the
  DSP answer that keeps the rule against one that breaks it; for refusing harm, HH harmless pairs whose chosen
  answer refuses and whose rejected one does not.

HH harmless pairs are never flipped: the paper's "Prioritize Helpfulness: A < B" would teach the policy to help with
harmful requests whenever a user asks it to; here a harmful request meets System Info, which wins.

A source may be narrowed to one subset, `SOURCE:SUBSET` (`dsp:priority`: DSP's Priority conflicts alone).

Each pair names its `preference` (an id such as "dsp:literature", "priority:formal"), which hold-outs name: a held-out
preference's pairs go to unseen.jsonl only, in every phrasing; so do a seeded share of the free-text preferences
(`hold_out_free_text`). `max_per_preference` caps the pairs of each preference id (DSP's domains alone would be
most of the data), keeping the same seeded prompts for every id so that flipped pairs stay together. Pairs are
split into train and valid by prompt.
"""

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import PersonalignError
from ..flag_help import flag_help
from ..meta_prompt import DEFAULT_SYSTEM_INFO, MetaPrompt
from ..prompts import as_messages
from . import read_shared_json
from .converters import DSP_PREFERENCES, load_hhh_pairs
from ..records import write_records_atomic, write_text_atomic
from ..validation import parse_json_lines
from .metaalign_constraints import constraint_pairs
from .metaalign_synth import synth_pairs
from .pairs import _problem, load_hh_pairs, prompt_key, split_pairs
from .priority import RULES, obeys, word_count

SUBSETS = ("priority", "helpful", "consensus", "diverse")
SHARED_SOURCES = ("dsp", "hh", "hhh")  # read from the shared data directory
# synth: a `personalign data synth` run (--synth DIR); constraints: a `personalign data constraints` run
SOURCES = (*SHARED_SOURCES, "synth", "constraints")
PERSONAS = {  # implicit User Info: a background that implies the domain's style
    "academy": ("I'm a professor who spends my days reading research papers.",
                "I'm writing my doctoral thesis and practically live in the library.",
                "I review articles for a scientific journal."),
    "business": ("I run a small company and my time is money.",
                 "I'm a sales manager preparing for a board meeting.",
                 "I work as a consultant advising startups."),
    "entertainment": ("I'm a stand-up comedian always looking for material.",
                      "I'm a teenager and dry explanations bore me to tears.",
                      "I host a podcast about parties and games."),
    "literature": ("I teach literature at a university.",
                   "I write poetry in my spare time.",
                   "I'm a novelist who loves a well-turned phrase."),
}
CONSENSUS = "I want the standard, widely accepted answer, not one styled for any particular audience."
HELPFUL = {"helpfulness": "Prioritize helpfulness: I want the most useful and complete answer.",
           "honest": "Prioritize honesty: I want an answer that is truthful about what it knows.",
           "harmless": "Prioritize safety: I want an answer that avoids anything harmful."}
HHH_SUBSETS = {"helpfulness": "helpful", "honest": "helpful", "harmless": "helpful",
               "helpful, honest and harmless": "consensus"}


@dataclass(frozen=True)
class MetaPair:
    """Under the meta-prompt (system_info, user_info), `chosen` is a better answer to `prompt` than `rejected`."""
    preference: str  # what the meta-prompt asks for, as an id ("dsp:literature"); hold-outs name these
    system_info: str
    user_info: str
    prompt: str | list[dict]
    chosen: str
    rejected: str
    subset: str
    explicit: bool  # the preference is stated ("answer formally"), not implied by a background
    rule: str | None = None  # priority: the System Info rule (priority.RULES) and its params
    params: dict | None = None
    # True where that answer is a rollout cut off at its token limit (synth): SFT must not teach the policy to stop
    # there (None: a whole answer)
    chosen_truncated: bool | None = None
    rejected_truncated: bool | None = None

    @property
    def meta_prompt(self) -> MetaPrompt:
        return MetaPrompt(self.system_info, self.user_info)


def dsp_pairs(data_dir=None, seed: int = 0) -> list[MetaPair]:
    """diverse, consensus and priority pairs from DSP's domain answers (see the module docstring)."""
    rng = random.Random(seed)
    pairs = []
    for record in read_shared_json("dsp/domain_specific_preference.test.json.gz", data_dir):
        query, answers = record["query"], {k: v.strip() for k, v in record["responses"].items()}
        for domain, stated in DSP_PREFERENCES.items():
            # each query meets the explicit preference and one background, drawn per query
            for user_info, explicit in ((stated, True), (rng.choice(PERSONAS[domain]), False)):
                pairs += [MetaPair(f"dsp:{domain}", DEFAULT_SYSTEM_INFO, user_info, query, answers[domain],
                                   answers[other], "diverse", explicit)
                          for other in [*DSP_PREFERENCES, "normal"] if other != domain]
            pairs.append(MetaPair("consensus", DEFAULT_SYSTEM_INFO, CONSENSUS, query, answers["normal"],
                                  answers[domain], "consensus", True))
        pairs += _priority_from_answers(query, list(answers.values()))
    return _distinct(pairs)


def _priority_from_answers(query: str, answers: list[str]) -> list[MetaPair]:
    """For each text rule, the first answer that keeps it against the first that breaks it (if both exist)."""
    shortest = min(answers, key=word_count)
    limits = {"max_words": max(20, math.ceil(word_count(shortest) / 10) * 10)}
    pairs = []
    for name in ("word-limit", "no-lists", "formal"):
        params = limits if name == "word-limit" else {}
        kept = [a for a in answers if obeys(name, params, a)]
        broken = [a for a in answers if not obeys(name, params, a)]
        if name == "word-limit":  # a clear case only: the rejected answer is well over the limit
            broken = [a for a in broken if word_count(a) > 1.5 * params["max_words"]]
        if kept and broken:
            rule = RULES[name]
            pairs.append(MetaPair(f"priority:{name}", rule.system_text(params), rule.user_info, query, kept[0],
                                  broken[0], "priority", True, name, params))
    return pairs


def hh_pairs(data_dir=None) -> list[MetaPair]:
    """helpful pairs from HH helpfulness, and refuse-harm priority pairs from HH harmless."""
    pairs = [MetaPair("helpful:helpfulness", DEFAULT_SYSTEM_INFO, HELPFUL["helpfulness"], p.prompt, p.chosen,
                      p.rejected, "helpful", True) for p in load_hh_pairs("helpfulness", data_dir)]
    rule = RULES["refuse-harm"]
    pairs += [MetaPair("priority:refuse-harm", rule.system_text({}), rule.user_info, p.prompt, p.chosen, p.rejected,
                       "priority", True, rule.name, {})
              for p in load_hh_pairs("harmless", data_dir)
              if obeys(rule.name, {}, p.chosen) and not obeys(rule.name, {}, p.rejected)]
    return pairs


def hhh_pairs(data_dir=None) -> list[MetaPair]:
    pairs = []
    for p in load_hhh_pairs(data_dir):
        subset = HHH_SUBSETS[p.preference]
        user_info = CONSENSUS if subset == "consensus" else HELPFUL[p.preference]
        name = "consensus" if subset == "consensus" else f"helpful:{p.preference}"
        pairs.append(MetaPair(name, DEFAULT_SYSTEM_INFO, user_info, p.prompt, p.chosen, p.rejected, subset, True))
    return pairs


LOADERS = {"dsp": dsp_pairs, "hh": lambda data_dir, seed: hh_pairs(data_dir),
           "hhh": lambda data_dir, seed: hhh_pairs(data_dir)}


def _distinct(pairs: list[MetaPair]) -> list[MetaPair]:
    """Without repeats (same meta-prompt, prompt and answers) or pairs of identical answers."""
    seen, kept = set(), []
    for pair in pairs:
        key = (pair.system_info, pair.user_info, prompt_key(pair), pair.chosen, pair.rejected)
        if pair.chosen and pair.rejected and pair.chosen != pair.rejected and key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept


def build(sources: tuple[str, ...], hold_out: tuple[str, ...] = (), valid_fraction: float = 0.1, seed: int = 0,
          data_dir=None, synth: tuple = (), judge=None, hold_out_free_text: float = 0.0,
          max_per_preference: int | None = None, constraints=None, twins: bool = False) -> dict[str, list[MetaPair]]:
    """{"train", "valid", "unseen"}: the pairs of `sources` (each a name or NAME:SUBSET), split by prompt; held-out
    preferences only in unseen. The synth source reads the runs `synth` with `judge` scoring the P-SOUPS dimensions,
    and with `twins` their loop and off-topic twins (metaalign_synth.py)."""
    wanted = [_source(s) for s in sources]
    names = {name for name, _ in wanted}
    if ("synth" in names) != bool(synth):
        raise PersonalignError("the synth source and --synth DIR go together: give both or neither")
    if ("constraints" in names) != (constraints is not None):
        raise PersonalignError("the constraints source and --constraints DIR go together: give both or neither")
    if twins and not synth:
        raise PersonalignError("--twins takes the loop and off-topic twins of --synth runs: give --synth DIR")
    if not 0 <= hold_out_free_text < 1:
        raise PersonalignError(f"hold_out_free_text must be in [0, 1), got {hold_out_free_text}")
    loaders = {**LOADERS,
               "synth": lambda data_dir, seed: [p for run in synth for p in synth_pairs(run, judge, seed, twins)],
               "constraints": lambda data_dir, seed: constraint_pairs(constraints)}
    pairs = _distinct([pair for name, subset in wanted for pair in loaders[name](data_dir, seed)
                       if subset in (None, pair.subset)])
    missing = set(hold_out) - {p.preference for p in pairs}
    if missing:
        raise PersonalignError(f"--hold-out names preferences the data does not have: {', '.join(sorted(missing))}; "
                               f"there are: {', '.join(sorted({p.preference for p in pairs}))}")
    held = set(hold_out) | _free_text_share(pairs, hold_out_free_text, seed)
    kept = _capped([p for p in pairs if p.preference not in held], max_per_preference, seed)
    train, valid = split_pairs(kept, valid_fraction, seed)
    return {"train": train, "valid": valid, "unseen": [p for p in pairs if p.preference in held]}


def _source(text: str) -> tuple[str, str | None]:
    """(source, subset or None) of a --sources entry: NAME or NAME:SUBSET."""
    name, _, subset = text.partition(":")
    if name not in SOURCES:
        raise PersonalignError(f"unknown source {name!r}; the sources are {', '.join(SOURCES)}")
    if subset and subset not in SUBSETS:
        raise PersonalignError(f"unknown subset {subset!r} in {text!r}; the subsets are {', '.join(SUBSETS)}")
    return name, subset or None


def _free_text_share(pairs: list[MetaPair], share: float, seed: int) -> set[str]:
    """A seeded `share` of the free-text preference ids (at least one when there is a share to take)."""
    ids = sorted({p.preference for p in pairs if p.preference.startswith("free:")})
    count = math.ceil(share * len(ids)) if share else 0
    return set(random.Random(seed).sample(ids, count))


def _capped(pairs: list[MetaPair], cap: int | None, seed: int) -> list[MetaPair]:
    """At most `cap` pairs per preference id: those of its prompts first in one seeded order shared by every id, so
    that a prompt kept for one side of a flipped pair is kept for the other."""
    if cap is None:
        return pairs
    ranks = [hashlib.sha256(f"{seed}\0cap\0{prompt_key(p)}".encode()).digest() for p in pairs]
    by_preference: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        by_preference.setdefault(pair.preference, []).append(i)
    chosen = set()
    for own in by_preference.values():  # stable: pairs of one prompt keep their order
        chosen.update(sorted(own, key=ranks.__getitem__)[:cap])
    return [p for i, p in enumerate(pairs) if i in chosen]


def sft_examples(pairs: list[MetaPair], distinct: bool = False) -> list[dict]:
    """One SFT example per (meta-prompt, prompt, chosen answer): the policy learns to write the preferred answer.
    `distinct`: leave out an answer chosen under two preference ids or more for the same prompt and System Info
    (synthesis often picks one rollout as, say, both the most informative and the least friendly), since SFT on it
    teaches one answer whatever the User Info says."""
    shared = shared_targets(pairs) if distinct else set()
    seen, examples = set(), []
    for pair in pairs:
        key = (pair.system_info, pair.user_info, prompt_key(pair), pair.chosen)
        if key not in seen and _target(pair) not in shared:
            seen.add(key)
            examples.append(dict(preference=pair.preference, system_info=pair.system_info, user_info=pair.user_info,
                                 prompt=pair.prompt, response=pair.chosen, subset=pair.subset,
                                 explicit=pair.explicit, **({"truncated": True} if pair.chosen_truncated else {})))
    return examples


def shared_targets(pairs: list[MetaPair]) -> set:
    """(System Info, prompt, answer) of the answers chosen under more than one preference id."""
    preferences = defaultdict(set)
    for pair in pairs:
        preferences[_target(pair)].add(pair.preference)
    return {key for key, ids in preferences.items() if len(ids) > 1}


def _target(pair: MetaPair) -> tuple:
    """What an SFT target is shared across: the context but the User Info, and the chosen answer."""
    return pair.system_info, prompt_key(pair), pair.chosen


def stats(groups: dict[str, list[MetaPair]]) -> dict:
    """Counts for the README: pairs per subset and split, distinct preferences (meta-prompts), explicit/implicit."""
    everything = [p for group in groups.values() for p in group]
    meta_prompts = {(p.system_info, p.user_info) for p in everything}
    return {"pairs": {name: len(group) for name, group in groups.items()},
            "per_subset": {s: Counter(name for name, group in groups.items() for p in group if p.subset == s)
                           for s in SUBSETS},
            "distinct_meta_prompts": len(meta_prompts),
            "distinct_preference_ids": len({p.preference for p in everything}),
            "free_text_preferences": {name: len({p.preference for p in group if p.preference.startswith("free:")})
                                      for name, group in groups.items()},
            "explicit_pairs": sum(p.explicit for p in everything),
            "implicit_pairs": sum(not p.explicit for p in everything),
            "prompts": len({prompt_key(p) for p in everything})}


def as_record(pair: MetaPair) -> dict:
    return {k: v for k, v in asdict(pair).items() if v is not None}


SFT_TARGETS = ("all", "distinct")


@dataclass
class MetaDataConfig:
    out: str = field(metadata=flag_help("directory for train/valid/unseen.jsonl, sft_train/sft_valid.jsonl, "
                                    "stats.json", metavar="DIR"))
    sources: tuple[str, ...] | None = field(default=None, metadata=flag_help(
        f"comma-separated, from: {', '.join(SOURCES)}, each alone or one subset of it as SOURCE:SUBSET "
        f"(dsp:priority; subsets: {', '.join(SUBSETS)}) (none: {', '.join(SHARED_SOURCES)}, synth with --synth and "
        "constraints with --constraints)"))
    synth: tuple[str, ...] = field(default=(), metadata=flag_help(
        "a `personalign data synth` directory: its P-SOUPS pairs, flipped under each axis' opposite, and its "
        "free-text pairs; repeatable or comma-separated, each run's pairs ranked within its own rollouts",
        action="append", sep=",", metavar="DIR"))
    twins: bool = field(default=False, metadata=flag_help(
        "also the --synth runs' loop and off-topic twins (the chosen answer against a looped copy of it or another "
        "prompt's chosen answer), under their pair's meta-prompts: DPO pairs that guard against answers that loop "
        "or leave the question, which the offline judge cannot see"))
    constraints: str | None = field(default=None, metadata=flag_help(
        "a `personalign data constraints` directory: its pairs and their flips, under each statement of a "
        "constraint", metavar="DIR"))
    hold_out: tuple[str, ...] = field(default=(), metadata=flag_help(
        "keep this preference id (e.g. dsp:literature, priority:formal) out of train and valid, for the unseen "
        "measurement; repeatable or comma-separated", action="append", sep=",", metavar="PREFERENCE"))
    hold_out_free_text: float = field(default=0.0, metadata=flag_help(
        "share of the free-text preferences (from --synth) kept out of train and valid, for the unseen measurement"))
    max_per_preference: int | None = field(default=None, metadata=flag_help(
        "at most N pairs per preference id (seeded prompts, the same for every id)", metavar="N"))
    valid_fraction: float = field(default=0.1, metadata=flag_help("share of the prompts held out as valid"))
    seed: int = field(default=0, metadata=flag_help("seed of the split and of the background drawn per query"))
    sft_targets: str = field(default="all", metadata=flag_help(
        "all: an SFT example for every pair's chosen answer; distinct: none for an answer that is also another "
        "preference's chosen answer for the same prompt (SFT on such shared targets teaches ignoring the User "
        "Info, docs/metaalign-log.md)", choices=SFT_TARGETS))
    data_dir: str | None = field(default=None, metadata=flag_help("shared data directory (none: $PERSONALIGN_DATA or "
                                                              "../shared/data)"))

    @property
    def source_names(self) -> tuple[str, ...]:
        if self.sources is not None:
            return tuple(self.sources)
        return (*SHARED_SOURCES, *(("synth",) if self.synth else ()),
                *(("constraints",) if self.constraints else ()))


FILES = ("train", "valid", "unseen")


def write(config: MetaDataConfig, judge=None) -> dict:
    """Build everything first, then write every file atomically: a mistake leaves no file half-written. `judge`
    scores the P-SOUPS dimensions for the synth source."""
    if config.max_per_preference is not None and config.max_per_preference < 1:
        raise PersonalignError(f"max_per_preference must be >= 1, got {config.max_per_preference}")
    if config.sft_targets not in SFT_TARGETS:
        raise PersonalignError(f"sft_targets must be one of {', '.join(SFT_TARGETS)}, got {config.sft_targets!r}")
    groups = build(config.source_names, tuple(config.hold_out), config.valid_fraction, config.seed,
                   config.data_dir, tuple(config.synth), judge, config.hold_out_free_text,
                   config.max_per_preference, config.constraints, config.twins)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise PersonalignError(f"--out {out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        write_records_atomic(out / f"{name}.jsonl", [as_record(p) for p in groups[name]])
    sft = {name: sft_examples(groups[name], config.sft_targets == "distinct") for name in ("train", "valid")}
    for name, examples in sft.items():
        write_records_atomic(out / f"sft_{name}.jsonl", examples)
    summary = {**stats(groups), "sft_examples": {name: len(examples) for name, examples in sft.items()},
               "shared_sft_targets": len(shared_targets(groups["train"]))}
    write_text_atomic(out / "stats.json", json.dumps(summary, indent=2) + "\n")
    return summary


def read_meta_pairs(path) -> list[MetaPair]:
    """A MetaAlign pair file, checked line by line (a mistake names FILE:LINE)."""
    return parse_json_lines(path, "pair file", _meta_pair, "no pairs (the file is empty)")


SFT_FIELDS = ("preference", "system_info", "user_info", "prompt", "response", "subset", "explicit")
OPTIONAL_SFT_FIELDS = ("truncated",)  # true: the response was cut off at a token limit, so no end of turn follows it


def read_sft_examples(path) -> list[dict]:
    """A MetaAlign SFT file (`sft_examples`), checked line by line (a mistake names FILE:LINE)."""
    return parse_json_lines(path, "SFT file", _sft_example, "no examples (the file is empty)")


def _sft_example(record) -> dict:
    if not isinstance(record, dict):
        raise PersonalignError(f"expected a JSON object with {', '.join(SFT_FIELDS)}")
    missing = [f for f in SFT_FIELDS if f not in record]
    if missing:
        raise PersonalignError(f'missing "{missing[0]}"')
    unknown = sorted(set(record) - set(SFT_FIELDS) - set(OPTIONAL_SFT_FIELDS))
    if unknown:
        raise PersonalignError(f"unknown field {unknown[0]!r}; the fields are "
                               f"{', '.join(SFT_FIELDS + OPTIONAL_SFT_FIELDS)}")
    MetaPrompt(record["system_info"], record["user_info"])  # the tiers' own checks
    as_messages(record["prompt"])
    if not isinstance(record["response"], str) or not record["response"].strip():
        raise PersonalignError('"response" must be a non-empty string')
    if not isinstance(record.get("truncated", False), bool):
        raise PersonalignError('"truncated" must be true or false')
    return record


def _meta_pair(record) -> MetaPair:
    problem = _problem(record)
    if problem:
        raise PersonalignError(problem)
    known = {f for f in MetaPair.__dataclass_fields__}
    unknown = sorted(set(record) - known)
    if unknown:
        raise PersonalignError(f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}")
    MetaPrompt(record.get("system_info", ""), record.get("user_info", ""))  # the tiers' own checks
    if record.get("subset") not in SUBSETS:
        raise PersonalignError(f"subset must be one of {', '.join(SUBSETS)}, got {record.get('subset')!r}")
    if not isinstance(record.get("explicit"), bool):
        raise PersonalignError('"explicit" must be true or false')
    if any(not isinstance(record.get(f), (bool, type(None))) for f in ("chosen_truncated", "rejected_truncated")):
        raise PersonalignError('"chosen_truncated" and "rejected_truncated" must be true or false')
    if record.get("rule") is not None and record["rule"] not in RULES:
        raise PersonalignError(f"unknown priority rule {record['rule']!r}; the rules are {', '.join(RULES)}")
    return MetaPair(**record)
