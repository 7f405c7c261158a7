"""Pairs and a held-out multiple-choice set for content and constraint preferences ("I'm vegetarian", "I don't
drive"; the catalog is data/constraint_catalog.py).

The base model writes the answers: for every question of a constraint's domain and every item the constraint
suits or rules out, it answers the question asked to recommend that item (no preference shown). An answer counts
as respecting when it names its item and nothing the constraint's flags find; as violating when it names its item
and the flags find something ruled out; degenerate answers (template echo, loops) count as neither. So the labels
come from the constraint's own word list, not from a proxy judge that could be gamed.

    rollouts.jsonl  append-only, one line per (question, item, sample); a killed run resumes where it was
    pairs.jsonl     seen constraints, seen questions: under each way of stating the constraint, a respecting answer
                    chosen over a violating one; and the same pair flipped under another trained constraint of the
                    domain that rules out the chosen answer's item but not the rejected one's (the steak answer over
                    the lentil pasta for "I can't eat gluten"), so that no answer is simply good: what a reward
                    model prefers must come from the stated constraint (MetaAlign's label flipping). With
                    `item_pairs_per_question`, also pairs for constraints on single items (`item_constraints`)
    choices.jsonl   the held-out multiple-choice set: a statement of a constraint, a question, `options` (one
                    respecting answer, the rest violating, all cut to the same number of words so that no option
                    wins a log-likelihood comparison by being short) and `answer`, the respecting option's index.
                    Its "unseen" group holds constraints never trained on (every `hold_out_every`-th of the catalog),
                    its "seen" group the last question of each domain under the trained constraints.
    choices_minimal.jsonl  the same held-out questions and groups with options that differ only in the item they
                    recommend ("You could try a lentil curry." against "You could try a grilled steak."): one item
                    the constraint suits, the rest items it rules out, in one sentence frame. The written answers of
                    choices.jsonl also differ in length, wording and fluency, which move summed scores as much as the
                    constraint does (regenerating them moved one PersRM's unseen accuracy from 0.18 to 0.43); here
                    only the item can.

Everything is a function of the catalog, the seed and the rollouts, so the files are rebuilt on every run.
"""

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..answer_checks import degenerate
from ..errors import PersonalignError
from ..flag_help import flag_help
from ..records import read_records, write_records_atomic
from .constraint_catalog import CONSTRAINTS, Constraint
from .synth import NEUTRAL, refuse_other_settings, roll_out, stable_seed

ROLLOUTS = "rollouts.jsonl"
PAIRS = "pairs.jsonl"
CHOICES = "choices.jsonl"
MINIMAL_CHOICES = "choices_minimal.jsonl"
# the sentence frames of the minimal choices: every option of an item is its frame around another item
FRAMES = ("You could try {item}.", "I'd suggest {item}.", "How about {item}? It's a good choice.")
_FILLER = {"with", "your", "from", "that", "this", "some", "along", "through", "nearby", "down", "away", "hours",
           "glass", "bottle", "pint", "tray", "bowl", "slices", "cup"}


@dataclass
class ConstraintConfig:
    samples: int = field(default=2, metadata=flag_help("answers written per (question, item)"))
    pairs_per_question: int = field(default=4, metadata=flag_help(
        "most pairs per (statement of a constraint, question)"))
    options: int = field(default=3, metadata=flag_help("options per multiple-choice item: one respecting, the rest "
                                                        "violating"))
    hold_out_every: int = field(default=4, metadata=flag_help(
        "every N-th constraint of the catalog is held out of pairs.jsonl: the unseen group of choices.jsonl"))
    item_pairs_per_question: int = field(default=0, metadata=flag_help(
        "most pairs per (statement, question) for constraints on single items of the trained constraints "
        "(\"Please don't suggest a pecan pie.\"); 0: none"))
    max_new_tokens: int = field(default=64, metadata=flag_help("most tokens per answer"))
    temperature: float = field(default=0.7, metadata=flag_help("sampling temperature of the answers"))
    batch_size: int = field(default=16, metadata=flag_help("answers decoded together"))
    seed: int = field(default=0, metadata=flag_help("seed of the answers and of the pairing"))

    def validate(self) -> None:
        for name in ("samples", "pairs_per_question", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise PersonalignError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.item_pairs_per_question < 0:
            raise PersonalignError(f"item_pairs_per_question must be >= 0, got {self.item_pairs_per_question}")
        if self.options < 2:
            raise PersonalignError(f"options must be >= 2, got {self.options}")
        if self.hold_out_every < 2:
            raise PersonalignError(f"hold_out_every must be >= 2 (some constraints must be trained on), got "
                                   f"{self.hold_out_every}")
        if self.temperature < 0:
            raise PersonalignError(f"temperature must be >= 0, got {self.temperature}")


def is_held_out(index: int, config: ConstraintConfig) -> bool:
    """Whether the catalog's `index`-th constraint is unseen (kept for choices.jsonl only)."""
    return index % config.hold_out_every == config.hold_out_every - 1


def split_catalog(constraints, config: ConstraintConfig) -> tuple[list[Constraint], list[Constraint]]:
    """(trained, held out) constraints of a catalog."""
    trained, held_out = [], []
    for index, constraint in enumerate(constraints):
        (held_out if is_held_out(index, config) else trained).append(constraint)
    return trained, held_out


def instruction(question: str, item: str) -> str:
    """What the base model is asked, to write an answer to `question` that recommends `item`."""
    return f"{question} Recommend {item}."


def plan_answers(config: ConstraintConfig, constraints=CONSTRAINTS) -> list[dict]:
    """One job per (question, item, sample), items shared between constraints written once."""
    jobs = {}
    for constraint in constraints:
        for question in constraint.questions:
            for item in (*constraint.suits, *constraint.rules_out):
                for sample in range(config.samples):
                    job_id = f"{question}\t{item}\t{sample}"
                    jobs[job_id] = dict(id=job_id, prompt=instruction(question, item), preference=NEUTRAL,
                                        method="base", question=question, item=item)
    return list(jobs.values())


def content_words(item: str) -> list[str]:
    """The words that name `item`: 4+ letters, not filler."""
    return [w for w in re.findall(r"[a-z][a-z'-]{3,}", item.lower()) if w not in _FILLER]


def names_item(answer: str, item: str) -> bool:
    """Whether `answer` names `item`: one of the item's content words appears in it."""
    text = answer.lower()
    return any(re.search(rf"\b{re.escape(w)}", text) for w in content_words(item))


ITEM_TEXTS = ("Please don't suggest {item}.", "I can't stand {bare}.")


def item_constraints(trained, held_out) -> list[Constraint]:
    """One constraint per item the trained constraints name ("Please don't suggest a pecan pie."): that item ruled
    out, flagged by its words that no other item of the domain has, and the domain's other items suited. Hundreds
    of constraints where the hand catalog has dozens, every label still from a word check: a reward trained only on
    the catalog learned that an answer about the preference's subject fits it, and on unseen constraints ("I'm
    allergic to nuts") picked the answer recommending what the user ruled out. Items that a held-out constraint
    names or flags are left out, so that nothing of the unseen choices leaks in."""
    def leaks(item):
        return any(item in (*c.suits, *c.rules_out) or c.violated_by(item) for c in held_out)

    by_domain: dict[str, list[str]] = {}
    for constraint in trained:
        for item in (*constraint.suits, *constraint.rules_out):
            if not leaks(item) and item not in by_domain.setdefault(constraint.domain, []):
                by_domain[constraint.domain].append(item)
    derived = []
    for domain, items in by_domain.items():
        for item in items:
            others = {w for other in items if other != item for w in content_words(other)}
            own = [w for w in content_words(item) if w not in others]
            if not own:
                continue
            flags = r"\b(?:" + "|".join(map(re.escape, own)) + ")"
            bare = re.sub(r"^(?:a|an|the) ", "", item)
            suits = tuple(other for other in items if other != item and not re.search(flags, other, re.IGNORECASE))
            texts = tuple(t.format(item=item, bare=bare) for t in ITEM_TEXTS)
            derived.append(Constraint(f"item ({domain}): {item}", texts, domain, suits, (item,), flags))
    return derived


def respects(constraint: Constraint, answer: str, item: str) -> bool:
    return names_item(answer, item) and not constraint.violated_by(answer) and not degenerate(answer)


def violates(constraint: Constraint, answer: str, item: str) -> bool:
    return names_item(answer, item) and constraint.violated_by(answer) and not degenerate(answer)


def _split_answers(constraint: Constraint, question: str, by_key: dict) -> tuple[list[tuple], list[tuple]]:
    """(item, answer) that respect and that violate `constraint`, among the answers written for `question`."""
    good = [(item, text) for item in constraint.suits for text in by_key.get((question, item), ())
            if respects(constraint, text, item)]
    bad = [(item, text) for item in constraint.rules_out for text in by_key.get((question, item), ())
           if violates(constraint, text, item)]
    return good, bad


def build_pairs(trained, by_key: dict, config: ConstraintConfig, per_question: int, source: str) -> list[dict]:
    """Trained constraints, seen questions: respecting answers chosen over violating ones, and their flips (see the
    module docstring)."""
    pairs = []
    for constraint in trained:
        for question in constraint.questions[:-1]:
            good, bad = _split_answers(constraint, question, by_key)
            for text in constraint.texts:
                rng = random.Random(stable_seed(config.seed, "pairs", text, question))
                combos = [(g, b) for g in good for b in bad]
                for (good_item, chosen), (bad_item, rejected) in rng.sample(combos, min(per_question, len(combos))):
                    pairs.append(dict(preference=text, prompt=question, chosen=chosen, rejected=rejected,
                                      source=source, judge="constraint", constraint=constraint.name,
                                      chosen_item=good_item, rejected_item=bad_item, rejected_may_be_chosen=False))
    return pairs + flipped(pairs, trained)


def flipped(pairs: list[dict], constraints) -> list[dict]:
    """Each pair under the first statement of its constraint, reversed under every other constraint of the domain
    that the chosen answer violates and the rejected one respects."""
    by_name = {c.name: c for c in constraints}
    flips = []
    for pair in pairs:
        own = by_name[pair["constraint"]]
        if pair["preference"] != own.texts[0]:
            continue  # one flip per pair, not one per statement
        for other in constraints:
            if other.domain == own.domain and other is not own and other.violated_by(pair["chosen"]) \
                    and respects(other, pair["rejected"], pair["rejected_item"]):
                flips += [dict(pair, preference=text, chosen=pair["rejected"], rejected=pair["chosen"],
                               constraint=other.name, chosen_item=pair["rejected_item"],
                               rejected_item=pair["chosen_item"], flipped_from=own.name) for text in other.texts]
    return flips


def build_choices(constraints, by_key: dict, config: ConstraintConfig) -> list[dict]:
    """The held-out multiple-choice set (see the module docstring)."""
    items = []
    for constraint, question, group in _held_out_questions(constraints, config):
        good, bad = _split_answers(constraint, question, by_key)
        for text in constraint.texts:
            rng = random.Random(stable_seed(config.seed, "choices", text, question))
            options = _options(constraint, good, bad, config.options, rng)
            if options is not None:
                items.append(_choice(constraint, text, question, group, options, rng))
    return items


def build_minimal_choices(constraints, config: ConstraintConfig) -> list[dict]:
    """The held-out multiple-choice set with options that differ only in their item (see the module docstring):
    under each statement and held-out question, one item per item the constraint suits, against `options` - 1 of
    the items it rules out that its flags find. A function of the catalog and the seed: no answers are written."""
    items = []
    for constraint, question, group in _held_out_questions(constraints, config):
        flagged = [item for item in constraint.rules_out if constraint.violated_by(item)]
        if len(flagged) < config.options - 1:
            continue
        for text in constraint.texts:
            rng = random.Random(stable_seed(config.seed, "minimal choices", text, question))
            for good in constraint.suits:
                frame = rng.choice(FRAMES)
                options = [frame.format(item=item) for item in [good, *rng.sample(flagged, config.options - 1)]]
                items.append(_choice(constraint, text, question, group, options, rng))
    return items


def _held_out_questions(constraints, config: ConstraintConfig):
    """(constraint, question, group) of the choice sets: every question of an unseen constraint, the last question
    of a trained one (pairs never use it)."""
    for index, constraint in enumerate(constraints):
        unseen = is_held_out(index, config)
        for question in constraint.questions if unseen else constraint.questions[-1:]:
            yield constraint, question, "unseen" if unseen else "seen"


def _choice(constraint, text, question, group, options, rng) -> dict:
    """A choice item of `options`, the respecting one first, shuffled."""
    order = list(range(len(options)))
    rng.shuffle(order)
    return dict(preference=text, prompt=question, options=[options[i] for i in order], answer=order.index(0),
                constraint=constraint.name, group=group)


def _options(constraint, good, bad, count, rng) -> list[str] | None:
    """One respecting and count-1 violating answers of distinct items, cut to the same number of words and still
    what they were; None when the answers do not allow it."""
    bad_items = list(dict.fromkeys(item for item, _ in bad))
    if not good or len(bad_items) < count - 1:
        return None
    picked = [rng.choice(good)] + [rng.choice([a for a in bad if a[0] == item])
                                   for item in rng.sample(bad_items, count - 1)]
    words = min(len(text.split()) for _, text in picked)
    cut = [(item, " ".join(text.split()[:words])) for item, text in picked]
    if not respects(constraint, *cut[0][::-1]) or not all(violates(constraint, t, i) for i, t in cut[1:]):
        return None
    return [text for _, text in cut]


def write(config: ConstraintConfig, out, engine, progress: bool = True, constraints=CONSTRAINTS) -> dict:
    """Write (or resume) the answers into `out`, then rebuild pairs.jsonl and both choice files; returns counts
    (empty in processes but the first, under torchrun or accelerate launch)."""
    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_config(out, config)
    jobs = plan_answers(config, constraints)
    if not roll_out(engine, jobs, config, out / ROLLOUTS, progress).is_main:
        return {}
    wanted = {j["id"] for j in jobs}
    by_key: dict[tuple, list[str]] = {}
    for record in read_records(out / ROLLOUTS):
        if record["id"] in wanted and record["text"]:
            by_key.setdefault((record["question"], record["item"]), []).append(record["text"])
    trained, held_out = split_catalog(constraints, config)
    pairs = build_pairs(trained, by_key, config, config.pairs_per_question, "constraint")
    if config.item_pairs_per_question:
        pairs += build_pairs(item_constraints(trained, held_out), by_key, config, config.item_pairs_per_question,
                             "constraint-item")
    choices = build_choices(constraints, by_key, config)
    minimal = build_minimal_choices(constraints, config)
    write_records_atomic(out / PAIRS, pairs)
    write_records_atomic(out / CHOICES, choices)
    write_records_atomic(out / MINIMAL_CHOICES, minimal)
    return {"answers": sum(map(len, by_key.values())), "pairs": len(pairs),
            "of them flipped": sum("flipped_from" in p for p in pairs),
            "of them on single items": sum(p["source"] == "constraint-item" for p in pairs),
            "constraints in pairs": len({p["constraint"] for p in pairs}),
            "choices (seen)": sum(c["group"] == "seen" for c in choices),
            "choices (unseen)": sum(c["group"] == "unseen" for c in choices),
            "minimal choices (seen)": sum(c["group"] == "seen" for c in minimal),
            "minimal choices (unseen)": sum(c["group"] == "unseen" for c in minimal)}


def _check_same_config(out: Path, config: ConstraintConfig) -> None:
    """Answers written with other decoding settings must not be mixed in: refuse them. The settings that only shape
    pairs and choices may change."""
    refuse_other_settings(out / "constraints_config.json",
                          {k: getattr(config, k) for k in ("max_new_tokens", "temperature", "seed")}, "answers written")
