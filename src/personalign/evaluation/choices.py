"""Multiple-choice accuracy: does a score pick the option that respects the user's preference?

A choices file holds one JSON object per line: {"preference", "prompt", "options": [two or more answers],
"answer": index of the right option}, optionally "group" (rows of the table; default "all") and "constraint"
(`personalign data constraints` writes such a file). Three scores of each option, all summed over its tokens:

    prompting   log p_base(option | prompt, preference): the base model reading the preference in PAD's template,
                what preference prompting decodes with
    reward      the PersRM's summed token reward r (training/answer_rewards.py), what PAD adds to the base
    PAD         log-likelihood + beta * reward, the summed form of PAD's decoding score

An item counts as right for a score when the right option has the highest score; a tie at the top counts 1/m for
m tied options (so an untrained PersRM, whose rewards are all 0, scores the chance rate, not 1).

Each accuracy comes with a 95% interval, and so does the reward's lead over prompting (the issue's target): a
bootstrap that resamples whole constraints (items without a "constraint" each on their own), because the items of
one constraint share its statements and answers and are not independent draws. Regenerating the answers of the same
catalog moved the shipped PersRM's unseen accuracy from 0.18 to 0.43: the interval says how much of a difference
such a set can tell.
"""

from collections import defaultdict

import numpy as np

from ..errors import PersonalignError
from ..prompts import as_messages
from ..validation import parse_json_lines

SCORES = ("prompting", "reward", "pad")
LEAD = "reward_minus_prompting"
BOOTSTRAP_ROUNDS = 2000


def read_choices(path) -> list[dict]:
    """The items of a choices file, checked (a mistake names FILE:LINE)."""
    return parse_json_lines(path, "choices file", _item, "no items in the file")


def _item(record) -> dict:
    if not isinstance(record, dict):
        raise PersonalignError("expected a JSON object with preference, prompt, options and answer")
    preference, options, answer = record.get("preference"), record.get("options"), record.get("answer")
    if not isinstance(preference, str) or not preference.strip():
        raise PersonalignError('"preference" must be a non-empty string')
    as_messages(record.get("prompt"))  # a clear error for a bad prompt
    if not isinstance(options, list) or len(options) < 2 or \
            not all(isinstance(o, str) and o.strip() for o in options):
        raise PersonalignError('"options" must be a list of two or more non-empty strings')
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise PersonalignError(f'"answer" must be the index of an option (0 to {len(options) - 1})')
    group = record.get("group", "all")
    if not isinstance(group, str) or not group:
        raise PersonalignError('"group" must be a non-empty string')
    return dict(record, group=group)


def credit(scores: list[float], answer: int) -> float:
    """1 when the right option scores highest alone, 1/m when m options tie at the top with it, else 0."""
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    return 1 / len(tied) if answer in tied else 0.0


def score_items(items: list[dict], answer_scorer, beta: float = 1.0, progress=None) -> list[dict]:
    """Per item: each option's three scores (see the module docstring) and the credit each score earns.
    `answer_scorer(prompt, preference, options)` -> (log-likelihoods, rewards); `progress` is called per item."""
    scored = []
    for item in items:
        loglik, reward = answer_scorer(item["prompt"], item["preference"], item["options"])
        scores = {"prompting": loglik, "reward": reward, "pad": [l + beta * r for l, r in zip(loglik, reward)]}
        scored.append(dict(item, scores=scores,
                           credit={name: credit(values, item["answer"]) for name, values in scores.items()}))
        if progress:
            progress()
    return scored


def accuracy_table(scored: list[dict]) -> list[dict]:
    """Rows per group (and one for all items when there are several groups): items, chance, and each score's
    accuracy."""
    by_group = defaultdict(list)
    for item in scored:
        by_group[item["group"]].append(item)
    if len(by_group) > 1:
        by_group["(all)"] = scored
    rows = []
    for group, items in by_group.items():
        row = {"group": group, "items": len(items),
               "chance": sum(1 / len(i["options"]) for i in items) / len(items)}
        row.update({name: sum(i["credit"][name] for i in items) / len(items) for name in SCORES})
        row[LEAD] = row["reward"] - row["prompting"]
        for name in SCORES:
            row[f"{name}_interval"] = cluster_interval(items, lambda i, n=name: i["credit"][n])
        row[f"{LEAD}_interval"] = cluster_interval(items, lambda i: i["credit"]["reward"] - i["credit"]["prompting"])
        rows.append(row)
    return rows


def cluster_interval(items: list[dict], value, level: float = 0.95, seed: int = 0) -> list[float]:
    """A percentile bootstrap interval for the mean of value(item) over `items`, resampling whole clusters (see the
    module docstring); seeded, so a table reprints the same."""
    clusters = defaultdict(list)
    for index, item in enumerate(items):
        clusters[item.get("constraint", index)].append(value(item))
    sums = np.array([sum(values) for values in clusters.values()])
    counts = np.array([len(values) for values in clusters.values()])
    picks = np.random.default_rng(seed).integers(0, len(sums), size=(BOOTSTRAP_ROUNDS, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]
