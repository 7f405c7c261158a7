"""An LLM judge over any OpenAI-compatible chat-completions endpoint, with P-SOUPS' own pairwise judge prompts.

Prompts: the criteria-wise GPT-4 annotator templates P-SOUPS evaluated with (p1a..p3d and helpfulness, three
worked examples then the pair to judge), read from the shared data tarball in memory. Each chatml template
becomes a system and a user message; {instruction}, {output_1} and {output_2} are filled in after parsing, so
text in the answers can neither break the chatml nor be taken for a placeholder. Decoding follows the
templates' .yaml: temperature 0.1, max_tokens 512.

Position bias: for every pair a seeded random.Random (the judge's, seed=0 by default) decides which answer is
shown as Output (a); verdicts are mapped back to the caller's order. The draw sequence continues across calls,
so a run is reproducible given the seed and the same sequence of pairs.

Verdicts: the text after the last "### Result for example 4:" when the reply has that heading (it must name
exactly one of Output (a), Output (b), TIE); otherwise the last of those the reply mentions. A reply with no
verdict counts as a tie (0.5) and is counted in `unparsed`, so a report can say how many ties are really
failures to answer.

Errors: the openai client retries connection failures, timeouts, 429 and 5xx twice with exponential backoff;
what still fails raises a one-line PersonalignError.
"""

import os
import random
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from ...data_dir import default_data_dir
from ...errors import PersonalignError
from .base import Judge

TARBALL = "psoups/psoups_criteria_judge_prompts.tar.gz"
TEMPLATE_DIR = "evaluate/alpaca_farm/auto_annotations/annotators/criteria_wise_eval_gpt4"
TEMPLATES = {"elementary": "p1a", "expert": "p1b", "concise": "p2a", "informative": "p2b", "friendly": "p3a",
             "unfriendly": "p3b", "sassy": "p3c", "sarcastic": "p3d", "helpfulness": "helpfulness"}
TEMPERATURE = 0.1  # decoder_kwargs of every template's .yaml
MAX_TOKENS = 512

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")
_RESULT_HEADING = re.compile(r"#+\s*Result for example 4\s*:", re.IGNORECASE)
_VERDICT = re.compile(r"Output\s*\(([ab])\)|\b(TIE)\b", re.IGNORECASE)


def load_templates(data_dir=None) -> dict[str, list[dict[str, str]]]:
    """Each dimension's judge prompt as chat messages (system, user) with placeholders, from the shared tarball."""
    tarball = Path(data_dir if data_dir is not None else default_data_dir()) / TARBALL
    if not tarball.is_file():
        raise PersonalignError(f"P-SOUPS judge prompts not found at {tarball}: set PERSONALIGN_DATA (or pass "
                               "data_dir) to the shared data directory")
    try:
        with tarfile.open(tarball) as tar:
            return {dim: _chat_messages(tar.extractfile(f"{TEMPLATE_DIR}/{stem}.txt").read().decode("utf-8"))
                    for dim, stem in TEMPLATES.items()}
    except (tarfile.TarError, KeyError, OSError) as error:
        raise PersonalignError(f"could not read the P-SOUPS judge prompts from {tarball}: {error}") from error


def _chat_messages(chatml: str) -> list[dict[str, str]]:
    # stripped like AlpacaEval's prompt_to_chatml, which sent these templates to GPT-4
    return [{"role": role, "content": content.strip()} for role, content in _CHATML.findall(chatml)]


def parse_verdict(reply: str) -> str | None:
    """"a", "b" or "tie" from a judge's reply (see the module docstring), None when it names no verdict."""
    *before, result = _RESULT_HEADING.split(reply)
    if before:
        section = re.split(r"\n#", result)[0]
        found = {(a_or_b or "tie").lower() for a_or_b, _ in _VERDICT.findall(section)}
        return found.pop() if len(found) == 1 else None
    matches = _VERDICT.findall(reply)
    return (matches[-1][0] or "tie").lower() if matches else None


class LLMJudge(Judge):
    """Pairwise judge: asks a chat model which of two answers better fits a P-SOUPS criterion."""

    pointwise = False

    def __init__(self, model: str, base_url: str, *, data_dir=None, seed: int = 0, max_workers: int = 4,
                 max_retries: int = 2, timeout: float = 120.0, temperature: float = TEMPERATURE,
                 max_tokens: int = MAX_TOKENS):
        self.name = f"llm:{model}@{base_url}"
        self.model = model
        self.base_url = base_url
        self.templates = load_templates(data_dir)
        self.max_workers = max_workers
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.unparsed = 0  # replies with no verdict, scored as ties
        self._rng = random.Random(seed)
        # local servers need no key; the client refuses to start without one, so send a placeholder
        self._client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "none",
                                     max_retries=max_retries, timeout=timeout)

    @classmethod
    def from_spec(cls, spec: str, **kwargs) -> "LLMJudge":
        """`MODEL@BASE_URL`, e.g. `gpt-4o@https://api.openai.com/v1`; the key comes from $OPENAI_API_KEY."""
        model, _, base_url = spec.partition("@")
        if not model.strip() or not base_url.startswith(("http://", "https://")):
            raise PersonalignError(f"judge spec {spec!r} should be MODEL@BASE_URL, e.g. "
                                   "gpt-4o@https://api.openai.com/v1")
        return cls(model.strip(), base_url.strip(), **kwargs)

    def dimensions(self) -> tuple[str, ...]:
        return tuple(TEMPLATES)

    def compare(self, dimension: str, prompts: list[str], responses_a: list[str],
                responses_b: list[str]) -> list[float]:
        """Per pair: 1.0 if the model prefers a, 0.0 if b, 0.5 for a tie or a reply without a verdict."""
        self.check(dimension)
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise PersonalignError(f"{len(prompts)} prompts, {len(responses_a)} and {len(responses_b)} responses; "
                                   "give one of each per pair")
        swaps = [self._rng.random() < 0.5 for _ in prompts]  # drawn here, in order, not in the worker threads
        shown = [(p, b, a) if swap else (p, a, b) for p, a, b, swap in zip(prompts, responses_a, responses_b, swaps)]
        pool = ThreadPoolExecutor(self.max_workers)
        try:
            replies = list(pool.map(lambda job: self._ask(dimension, *job), shown))
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, do not keep sending the rest
        results = []
        for reply, swap in zip(replies, swaps):
            verdict = parse_verdict(reply)
            if verdict is None:
                self.unparsed += 1
            results.append(0.5 if verdict in (None, "tie") else float((verdict == "a") != swap))
        return results

    def _ask(self, dimension: str, instruction: str, output_1: str, output_2: str) -> str:
        values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
        messages = [{"role": m["role"], "content": _PLACEHOLDER.sub(lambda f: values[f[1]], m["content"])}
                    for m in self.templates[dimension]]
        try:
            completion = self._client.chat.completions.create(model=self.model, messages=messages,
                                                              temperature=self.temperature,
                                                              max_tokens=self.max_tokens)
        except openai.OpenAIError as error:
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise PersonalignError(f"LLM judge {self.model} at {self.base_url} failed: {detail}") from error
        return (completion.choices[0].message.content or "") if completion.choices else ""
