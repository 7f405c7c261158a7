"""Preference pairs from the shared data sets, by source name (`SOURCES`, `load_source`).

- hh-helpful, hh-harmless: the HH-RLHF test pairs of `pairs.load_hh_pairs` (preferences "helpfulness" and
  "harmless"), with each dialogue prompt as chat messages (`hh_messages`); a one-turn prompt stays text.
- dsp-domain: DSP's 661 queries, each answered in four domain styles (academy, business, entertainment,
  literature) and once plainly ("normal", the original Alpaca answer). For a user of domain d (`DSP_PREFERENCES`)
  the d answer is chosen over each of the other three domain answers. The normal answer is left out: the four
  styled answers come from one model asked for each style, so a pair differs in style alone and the same two answers
  swap places under the other domain's preference, which a reward model can only get right by reading the
  preference; "styled beats normal" would hold under every preference and could be learnt while ignoring it.
  Identical answers give no pair (58 times two styles of a query agree; in 6 queries all four do),
  which leaves 7816 pairs from 655 queries; 32 of them repeat another (two identical rejected answers), so
  `dedupe_pairs` keeps 7784.
- hhh: the 221 BIG-bench HHH alignment pairs in Prometheus' evaluation format, preference by the pair's source
  (`HHH_PREFERENCES`); the dialogue prompts of the 41 multi-turn ones become chat messages.
"""

from dataclasses import asdict, replace

from ..errors import PersonalignError
from . import read_shared_json
from .pairs import Pair, _problem, hh_messages, load_hh_pairs

DSP_PREFERENCES = {
    "academy": "I am an academic: answer in a rigorous, formal, scholarly style.",
    "business": "I work in business: answer in a practical, professional style focused on outcomes.",
    "entertainment": "I want to be entertained: answer in a lively, playful, fun style.",
    "literature": "I love literature and art: answer in an expressive, imaginative, literary style.",
}
HHH_PREFERENCES = {"helpful": "helpfulness", "harmless": "harmless", "honest": "honest",
                   "other": "helpful, honest and harmless"}
_INSTRUCTION = "###The instruction to evaluate:\n"
_RESPONSE = "\n\n###Response to evaluate:\n"
_RUBRICS = "\n\n###Score Rubrics:"


def load_dsp_domain_pairs(data_dir=None) -> list[Pair]:
    """DSP domain pairs (see the module docstring): by query, then domain, then rejected domain, in file order."""
    pairs = []
    for record in read_shared_json("dsp/domain_specific_preference.test.json.gz", data_dir):
        responses = record["responses"]
        for domain, preference in DSP_PREFERENCES.items():
            pairs += [Pair(preference, record["query"], responses[domain], responses[other])
                      for other in DSP_PREFERENCES if other != domain]
    return _valid(pairs)


def load_hhh_pairs(data_dir=None) -> list[Pair]:
    """HHH alignment pairs in file order (see the module docstring); a pair whose two instructions hold different
    prompts is dropped (none in the shared file)."""
    pairs = []
    for record in read_shared_json("hhh_alignment/hhh_alignment_eval.json.gz", data_dir):
        prompt, chosen = _prometheus_parts(record["chosen_instruction"])
        other_prompt, rejected = _prometheus_parts(record["rejected_instruction"])
        if prompt == other_prompt:
            pairs.append(Pair(HHH_PREFERENCES[record["source"]], _chat(prompt), chosen, rejected))
    return _valid(pairs)


def _prometheus_parts(text: str) -> tuple[str, str]:
    """(instruction, response) of a Prometheus absolute-grading prompt; a missing marker leaves one of them empty,
    so the pair is dropped."""
    prompt, _, rest = text.partition(_INSTRUCTION)[2].partition(_RESPONSE)
    return prompt.strip(), rest.partition(_RUBRICS)[0].strip()


def _chat(text: str):
    """A dialogue prompt as chat messages; a one-turn prompt as its text, like every other single prompt."""
    messages = hh_messages(text)
    return messages[0]["content"] if len(messages) == 1 else messages


def _valid(pairs: list[Pair]) -> list[Pair]:
    # empty or identical responses (and empty prompts) give no pair
    return [pair for pair in pairs if _problem(asdict(pair)) is None]


def _hh_chat_pairs(preference: str):
    # load_hh_pairs keeps text prompts: the trained judges embed and split that text
    return lambda data_dir: [replace(pair, prompt=_chat(pair.prompt)) for pair in load_hh_pairs(preference, data_dir)]


SOURCES = {
    "hh-helpful": _hh_chat_pairs("helpfulness"),
    "hh-harmless": _hh_chat_pairs("harmless"),
    "dsp-domain": load_dsp_domain_pairs,
    "hhh": load_hhh_pairs,
}


def load_source(name: str, data_dir=None) -> list[Pair]:
    """The pairs of the source called `name` (a key of SOURCES), read from the shared data directory."""
    if name not in SOURCES:
        raise PersonalignError(f"unknown pair source {name!r}; the sources are: {', '.join(SOURCES)}")
    return SOURCES[name](data_dir)
