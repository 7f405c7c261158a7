"""MetaAlign pairs from a `personalign data synth` run (its pairs.jsonl): the P-SOUPS axes by label flipping, and
free-text preferences (the Janus sample) as Diverse-Opinion pairs.

A synth pair under dimension d (say concise) holds the rollout its judge liked best for d against the one it liked
least. Under d's opposite on the same axis (informative) the same two answers usually rank the other way round: the
flipped pair is kept when the judge scores the rejected answer higher under the opposite dimension and that answer
could have been chosen (synth lets a looping, template-echoing or off-question rollout be rejected, never chosen;
runs from before the on-question check say nothing of it, and only degenerate answers are kept out). So one pair of
answers carries opposite labels under the axis' two preferences, and only the meta-prompt tells them apart.

Each P-SOUPS pair appears twice: under the dimension's P-SOUPS text (explicit) and under a background that implies
it (implicit, `PSOUPS_PERSONAS`, one drawn per prompt). The backgrounds that measure implicit preferences
(benchmarks/implicit_personas.py) are other ones, so that measurement never sees a trained phrasing.

Free-text pairs keep the text as User Info, under the id "free:" + a short hash of it, which hold-outs name.

`twins`: also the run's loop and off-topic twins (loop_pairs.jsonl, offtopic_pairs.jsonl: the chosen answer against
a looped copy of it, or against another prompt's chosen answer under the same preference), under the same
meta-prompts as their pair and never flipped. They guard DPO against what the offline judge cannot see: a
reading-grade judge scores a loop of short words as elementary, and every judge but relevance ignores the question.

Most rollouts stop at synth's token limit, mid-sentence: each answer says whether its rollout was cut off
(rollouts.jsonl's finish_reason), so that SFT on it teaches the policy to go on writing, not to stop there.
"""

import hashlib
import random
from pathlib import Path

from .. import catalog
from ..answer_checks import degenerate
from ..errors import PersonalignError
from ..meta_prompt import DEFAULT_SYSTEM_INFO
from ..records import read_records
from .synth import LOOP_PAIRS, OFFTOPIC_PAIRS, PAIRS, PSOUPS_DIMENSIONS, ROLLOUTS, rollout_id

PSOUPS_PERSONAS = {  # implicit User Info for training; the measurement's backgrounds differ (see the docstring)
    "elementary": ("I'm a fourth-grader doing my homework.", "I'm nine years old.",
                   "I'm a kid who just started reading chapter books."),
    "expert": ("I have a PhD in this field and publish in it.",
               "I'm a senior researcher who reads the primary literature every day.",
               "I'm a specialist who teaches graduate seminars on this."),
    "concise": ("I'm busy and only have a minute.", "I read your answers on my phone between meetings.",
                "I'm a bottom-line person."),
    "informative": ("I'm writing a thorough report and need all the background.",
                    "I'm new to this and want to understand it fully.",
                    "I love learning every detail about a topic."),
    "friendly": ("I'm feeling a bit down today and could use a laugh.", "I love chatting the way old friends do.",
                 "I'm a cheerful person who enjoys a good joke."),
    "unfriendly": ("I can't stand chit-chat or niceness.", "I'm a grumpy old man who hates being coddled.",
                   "Politeness gets on my nerves."),
}


def free_text_id(text: str) -> str:
    return "free:" + hashlib.sha256(text.encode()).hexdigest()[:8]


def synth_pairs(synth_dir, judge, seed: int = 0, twins: bool = False) -> list:
    """MetaPairs from `synth_dir`/pairs.jsonl, and with `twins` its loop and off-topic twins (see the module
    docstring). `judge` scores the P-SOUPS dimensions (the evaluation's offline judge, which the command wires: the
    data layer does not import evaluation)."""
    path = Path(synth_dir) / PAIRS
    if not path.is_file():
        raise PersonalignError(f"--synth {synth_dir}: no {PAIRS} (run `personalign data synth --out {synth_dir}`)")
    records = read_records(path)
    cut = _truncated(Path(synth_dir) / ROLLOUTS)
    dims = [r for r in records if r.get("preference") in PSOUPS_DIMENSIONS]
    flipped = flipped_labels(dims, judge)
    pairs = []
    for record, flip in zip(dims, flipped):
        rng = random.Random(f"{seed}\0{record['prompt_id']}")  # one background drawn per side of the flip
        cuts = (cut(record, "chosen"), cut(record, "rejected"))
        pairs += _psoups_pairs(record, record["preference"], record["chosen"], record["rejected"], cuts, rng)
        if flip:
            pairs += _psoups_pairs(record, *flip, cuts[::-1], rng)
    pairs += [_free_text_pair(r, cut) for r in records if r.get("judge") == "relevance"]
    for name in (LOOP_PAIRS, OFFTOPIC_PAIRS) if twins else ():
        for r in read_records(Path(synth_dir) / name):  # none where the run wrote no twins
            if r["preference"] in PSOUPS_DIMENSIONS:
                cuts = (cut(r, "chosen"), cut(r, "rejected"))  # a looped copy names no rollout: never cut off
                rng = random.Random(f"{seed}\0{r['prompt_id']}")  # the background of its pair
                pairs += _psoups_pairs(r, r["preference"], r["chosen"], r["rejected"], cuts, rng)
            else:
                pairs.append(_free_text_pair(r, cut))
    return pairs


def _psoups_pairs(record: dict, dim: str, chosen: str, rejected: str, cuts: tuple, rng: random.Random) -> list:
    """`chosen` over `rejected` under dimension `dim`, stated and implied by a background `rng` draws; `cuts` says
    of each answer whether its rollout was cut off."""
    from .metaalign import MetaPair

    return [MetaPair(f"psoups:{dim}", DEFAULT_SYSTEM_INFO, user_info, record["prompt"], chosen, rejected, "diverse",
                     explicit, chosen_truncated=cuts[0], rejected_truncated=cuts[1])
            for user_info, explicit in ((catalog.lookup(dim).text, True), (rng.choice(PSOUPS_PERSONAS[dim]), False))]


def _free_text_pair(record: dict, cut):
    """A free-text preference's pair, the text as User Info."""
    from .metaalign import MetaPair

    return MetaPair(free_text_id(record["preference"]), DEFAULT_SYSTEM_INFO, record["preference"], record["prompt"],
                    record["chosen"], record["rejected"], "diverse", True, chosen_truncated=cut(record, "chosen"),
                    rejected_truncated=cut(record, "rejected"))


def _truncated(rollouts: Path):
    """(pair record, "chosen" | "rejected") -> True where that answer's rollout hit the token limit, None otherwise (a
    whole answer, or a run without rollouts.jsonl). Pairs of runs from before `chosen_id` name the rollout by its
    preference, then the only one."""
    limited = {r["id"] for r in read_records(rollouts) if r.get("finish_reason") == "length"} \
        if rollouts.is_file() else set()

    def cut(record, side):
        rollout = record.get(f"{side}_id") or rollout_id(record.get("prompt_id"), record.get(f"{side}_under"))
        return True if rollout in limited else None
    return cut


def flipped_labels(records: list[dict], judge) -> list[tuple | None]:
    """For each pair under d: (opposite of d, rejected, chosen) where the judge agrees and the rejected answer may be
    chosen, else None. One scoring call per dimension."""
    flips: list[tuple | None] = [None] * len(records)
    for dim in PSOUPS_DIMENSIONS:
        at = [i for i, r in enumerate(records) if catalog.OPPOSITE[r["preference"]] == dim]
        texts = [t for i in at for t in (records[i]["chosen"], records[i]["rejected"])]
        prompts = [records[i]["prompt"] for i in at for _ in (0, 1)]
        scores = judge.score(dim, prompts, texts) if at else []
        for k, i in enumerate(at):
            chosen, rejected = records[i]["chosen"], records[i]["rejected"]
            may_be_chosen = records[i].get("rejected_may_be_chosen", not degenerate(rejected))
            if scores[2 * k + 1] > scores[2 * k] and may_be_chosen:
                flips[i] = (dim, rejected, chosen)
    return flips
