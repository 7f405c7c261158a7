"""A judge of free-text preferences: how close a response is, in meaning, to the preference text itself.

Its dimension is any preference text ("I'm vegetarian", "Quick and straightforward"): the score is the cosine
similarity of the response's sentence embedding to the text's (all-MiniLM-L6-v2, shipped in a package, so nothing
is downloaded). It is a proxy: it sees whether an answer talks about what the user cares about, not whether it
obeys it ("no jargon" scores answers that mention jargon). It is what synthesis can use offline for preferences no
other judge knows; an LLM judge (llm:MODEL@URL) is the better choice where one is reachable.
"""

import torch

from ... import catalog
from ...errors import PersonalignError
from .base import Judge


class RelevanceJudge(Judge):
    name = "relevance"

    def __init__(self, embedder=None):
        if embedder is None:
            from .trained import _shared_minilm
            embedder = _shared_minilm()
        self.embedder = embedder

    def dimensions(self) -> tuple[str, ...]:
        return ("any free-text preference",)

    def judges(self, dimension: str) -> bool:
        """Free text only: a catalog name ("concise") is a word, not what the user wrote; other judges score those."""
        return isinstance(dimension, str) and bool(dimension.strip()) and catalog.lookup(dimension) is None

    def check(self, dimension: str) -> None:
        if not isinstance(dimension, str) or not dimension.strip():
            raise PersonalignError("the relevance judge needs a non-empty preference text as its dimension")

    def score(self, dimension: str, prompts: list[str], responses: list[str]) -> list[float]:
        self.check(dimension)
        if len(prompts) != len(responses):
            raise PersonalignError(f"{len(prompts)} prompts but {len(responses)} responses; give one prompt each")
        vectors = self.embedder([dimension, *responses])
        return (vectors[1:] @ vectors[0]).tolist()

    def score_many(self, dimensions: list[str], responses: list[str]) -> list[float]:
        """Response i against preference i, all embedded in one pass (synthesis judges thousands at once)."""
        texts = list(dict.fromkeys(dimensions))
        vectors = self.embedder(texts + responses)
        index = {t: i for i, t in enumerate(texts)}
        prefs = vectors[torch.tensor([index[d] for d in dimensions], dtype=torch.long)]
        return (vectors[len(texts):] * prefs).sum(-1).tolist()
