"""Tables and plots from generations.jsonl and judgments.jsonl.

results.csv is tidy: one line per (method, beta, preference, metric, judge, dimension) with its mean and count.
results.md holds the paper-style tables: per preference the judge's mean score on that preference's own
dimension(s), win rate against the baseline (the judge's verdict; again with failed answers losing, see
`failures_lose`; and over the prompts where neither answer failed, their count in results.csv), and per method
diversity, perplexity, how often an answer echoes PAD's prompt template or loops on a phrase (failures small models show, which proxy judges reward), how often
it is word for word the method's answer to the same prompt under another preference (a method that does not read the
preference answers them all alike; no judge is asked, so none can be gamed), how close it stays to its question (mean
cosine similarity of answer and prompt; a win bought by leaving the question shows here) and speed.
"""

import csv
import math
from collections import defaultdict
from pathlib import Path
from statistics import fmean

from ..preferences import Preference
from ..answer_checks import degenerate, echoes_template, loops
from .metrics import diversity
from .plan import EVAL_METHODS, GUIDED, baseline_key

CSV_FIELDS = ["method", "beta", "preference", "metric", "judge", "dimension", "value", "n"]


def write_report(config, answers: list[dict], judgments: list[dict], out: Path) -> list[dict]:
    rows = aggregate(config, answers, judgments)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(markdown(config, rows))
    plot(config, rows, out)
    return rows


def aggregate(config, answers, judgments) -> list[dict]:
    by_key = {a["key"]: a for a in answers}
    same = same_as_another_preference(answers)
    groups = defaultdict(list)  # (method, beta, preference, metric, judge, dimension) -> values
    for a in answers:
        where = (a["method"], a["beta"], a["preference"])
        if a["key"] in same:
            groups[(*where, "same_answer", "", "")].append(float(same[a["key"]]))
        groups[(*where, "diversity", "", "")].append(diversity(a["text"]))
        groups[(*where, "template_echo", "", "")].append(float(echoes_template(a["text"])))
        groups[(*where, "loops", "", "")].append(float(loops(a["text"])))
        groups[(*where, "tokens", "", "")].append(len(a["token_ids"]))
        groups[(*where, "seconds_per_answer", "", "")].append(a["seconds"])
    for j in judgments:
        a = by_key.get(j["key"])
        if a is None:
            continue
        metric = {"score": "score", "win": "win_rate", "perplexity": "perplexity", "on_question": "on_question"}[
            j["kind"]]
        groups[(a["method"], a["beta"], a["preference"], metric, j["judge"], j["dimension"])].append(j["value"])
        baseline = by_key.get(baseline_key(a, config)) if metric == "win_rate" else None
        if baseline is not None:
            where = (a["method"], a["beta"], a["preference"])
            failed, baseline_failed = degenerate(a["text"]), degenerate(baseline["text"])
            groups[(*where, "win_rate_failures_lose", j["judge"], j["dimension"])].append(
                failures_lose(j["value"], failed, baseline_failed))
            if not failed and not baseline_failed:
                groups[(*where, "win_rate_neither_failed", j["judge"], j["dimension"])].append(j["value"])
    rows = []
    for (method, beta, preference, metric, judge, dimension), values in sorted(groups.items(), key=str):
        values = [v for v in values if not math.isnan(v)]
        if not values:
            continue
        # perplexities are averaged as a geometric mean (the exp of the mean log-likelihood), as is usual
        value = math.exp(fmean(math.log(v) for v in values)) if metric == "perplexity" else fmean(values)
        rows.append(dict(method=method, beta=beta, preference=preference, metric=metric, judge=judge,
                         dimension=dimension, value=value, n=len(values)))
    for (method, beta, preference), tokens in _speed(answers).items():
        rows.append(dict(method=method, beta=beta, preference=preference, metric="tokens_per_second", judge="",
                         dimension="", value=tokens, n=0))
    return rows


def same_as_another_preference(answers) -> dict:
    """Per answer key: whether the same method (and beta) gave the same prompt the same text under another
    preference; only answers whose prompt the method answered under two preferences or more."""
    preferences = defaultdict(lambda: defaultdict(set))  # (method, beta, prompt) -> text -> preferences
    for a in answers:
        preferences[(a["method"], a["beta"], a["prompt_id"])][a["text"].strip()].add(a["preference"])
    out = {}
    for a in answers:
        texts = preferences[(a["method"], a["beta"], a["prompt_id"])]
        if sum(len(p) for p in texts.values()) > 1:
            out[a["key"]] = len(texts[a["text"].strip()]) > 1
    return out


def failures_lose(verdict: float, failed: bool, baseline_failed: bool) -> float:
    """The judge's verdict (1 win, 0.5 tie, 0 loss), unless exactly one of the two answers failed (copied PAD's
    template back or looped): a failed answer loses. Proxy judges score the preference words an echo repeats and
    the short words of a loop, so a method that fails this way more often than its baseline would otherwise
    collect wins for it; the judge still decides between two failures or two clean answers."""
    return verdict if failed == baseline_failed else float(baseline_failed)


def _speed(answers):
    total = defaultdict(lambda: [0, 0.0])
    for a in answers:
        t = total[(a["method"], a["beta"], a["preference"])]
        t[0] += len(a["token_ids"])
        t[1] += a["seconds"]
    return {k: n / s for k, (n, s) in total.items() if s > 0}


def _variants(config, rows):
    """(method, beta) pairs in config order: guided methods once per beta."""
    seen = {(r["method"], r["beta"]) for r in rows}
    methods = list(dict.fromkeys(config.methods + [config.baseline]))
    return [(m, b) for m in methods for b in EVAL_METHODS[m].betas(config) if (m, b) in seen]


def _label(method, beta):
    return f"{method} (β={beta:g})" if method in GUIDED else method


def own_dimension_value(rows, metric, judge, method, beta, preference):
    """The mean of `metric` on the preference's own dimensions (weighted for a mix); the base answered 'none'."""
    source = EVAL_METHODS[method].answered_under(preference)
    found = {(r["dimension"]): r["value"] for r in rows if r["metric"] == metric and r["judge"] == judge
             and r["method"] == method and r["beta"] == beta and r["preference"] == source}
    dims = Preference.parse(preference).judged_dimensions
    if not dims or any(name not in found for name, _ in dims):
        return None
    return sum(w * found[name] for name, w in dims)


def failure_share(rows, metric, method, beta, preference):
    """The share of a method's answers under `preference` that loop or echo (`metric`); the base answered 'none'."""
    source = EVAL_METHODS[method].answered_under(preference)
    return next((r["value"] for r in rows if r["metric"] == metric and r["method"] == method and r["beta"] == beta
                 and r["preference"] == source), None)


def markdown(config, rows) -> str:
    variants = _variants(config, rows)
    prefs = config.preferences
    lines = [f"# Evaluation: {config.prompts}, {config.max_new_tokens} new tokens", ""]
    judges = list(dict.fromkeys(r["judge"] for r in rows if r["metric"] in ("score", "win_rate")))
    for judge in judges:
        for metric, title in (("score", f"Mean {judge} score on each preference's own dimension (higher = more of it)"),
                              ("win_rate", f"Win rate against `{config.baseline}` ({judge}; ties count half)"),
                              ("win_rate_failures_lose", f"Win rate against `{config.baseline}`, failures lose "
                               f"({judge}; an answer that echoes PAD's template or loops loses to one that does "
                               "not)"),
                              ("win_rate_neither_failed", f"Win rate against `{config.baseline}` where neither answer "
                               f"failed ({judge}; how many: n in results.csv)")):
            table = [[_label(m, b)] + [own_dimension_value(rows, metric, judge, m, b, p) for p in prefs]
                     for m, b in variants]
            if all(v is None for row in table for v in row[1:]):
                continue
            lines += [f"## {title}", "", "| method | " + " | ".join(prefs) + " |",
                      "|---|" + "---|" * len(prefs)]
            lines += ["| " + " | ".join([row[0]] + [_fmt(v) for v in row[1:]]) + " |" for row in table]
            lines.append("")
    lines += ["## Loops / template echoes on each preference (share of answers)", "",
              "| method | " + " | ".join(prefs) + " |", "|---|" + "---|" * len(prefs)]
    for m, b in variants:  # an average hides a method that fails on one preference only
        lines.append("| " + " | ".join([_label(m, b)] + [
            f"{_fmt(failure_share(rows, 'loops', m, b, p))} / {_fmt(failure_share(rows, 'template_echo', m, b, p))}"
            for p in prefs]) + " |")
    lines.append("")
    lines += ["## Diversity, fluency and speed (averaged over preferences)", "",
              "| method | diversity | perplexity | echoes template | loops | same answer under another preference "
              "| on question | tokens/answer | s/answer | tokens/s |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for m, b in variants:
        def mean(metric):
            values = [r["value"] for r in rows if r["method"] == m and r["beta"] == b and r["metric"] == metric]
            return fmean(values) if values else None
        lines.append("| " + " | ".join([_label(m, b)] + [_fmt(mean(x)) for x in
                     ("diversity", "perplexity", "template_echo", "loops", "same_answer", "on_question", "tokens",
                      "seconds_per_answer", "tokens_per_second")]) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def plot(config, rows, out: Path) -> None:
    """scores.png: per preference, each method's mean score on its dimension; beta.png: score against beta."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judges = [j for j in dict.fromkeys(r["judge"] for r in rows if r["metric"] == "score")]
    if not judges:
        return
    judge, prefs, variants = judges[0], config.preferences, _variants(config, rows)
    fig, axes = plt.subplots(1, len(prefs), figsize=(2.6 * len(prefs), 3.2), squeeze=False)
    for ax, pref in zip(axes[0], prefs):
        values = [own_dimension_value(rows, "score", judge, m, b, pref) for m, b in variants]
        labels = [_label(m, b) for m, b in variants]
        ax.bar(range(len(values)), [v if v is not None else 0 for v in values], color=[f"C{i}" for i in
                                                                                        range(len(values))])
        ax.set_title(pref, fontsize=9)
        ax.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{judge} judge score on each preference's own dimension", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=120)
    plt.close(fig)
    if len(config.beta) < 2:
        return
    fig, axes = plt.subplots(1, len(prefs), figsize=(2.6 * len(prefs), 3.0), squeeze=False)
    for ax, pref in zip(axes[0], prefs):
        for i, method in enumerate(m for m in dict.fromkeys(config.methods) if m in GUIDED):
            points = [(b, own_dimension_value(rows, "score", judge, method, float(b), pref)) for b in config.beta]
            points = [(b, v) for b, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", label=method, color=f"C{i}")
        ax.set_title(pref, fontsize=9)
        ax.set_xlabel("β", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{judge} judge score against β", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "beta.png", dpi=120)
    plt.close(fig)
