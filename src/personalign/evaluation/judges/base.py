"""What a judge is: something that scores responses along named preference dimensions.

Dimensions are catalog names (elementary, expert, concise, informative, friendly, unfriendly, helpfulness, ...)
or, for a reward model that measures one thing, the name its user gives it. A pointwise judge gives every
response a number (higher = more of that dimension); a pairwise judge (an LLM comparing two answers) only says
which of two is better. Every judge can compare; only pointwise judges can score.
"""

from abc import ABC, abstractmethod

from ...errors import PersonalignError


class Judge(ABC):
    name: str = "judge"
    pointwise: bool = True

    @abstractmethod
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions this judge can score or compare on."""

    def score(self, dimension: str, prompts: list[str], responses: list[str]) -> list[float]:
        """One number per response, higher = more `dimension`. Pointwise judges override this."""
        raise PersonalignError(f"judge {self.name} only compares pairs; it cannot score single responses")

    def compare(self, dimension: str, prompts: list[str], responses_a: list[str],
                responses_b: list[str]) -> list[float]:
        """Per pair: 1.0 if a shows more `dimension` than b, 0.0 if b does, 0.5 for a tie."""
        a = self.score(dimension, prompts, responses_a)
        b = self.score(dimension, prompts, responses_b)
        return [1.0 if x > y else 0.0 if x < y else 0.5 for x, y in zip(a, b)]

    def judges(self, dimension: str) -> bool:
        """Whether this judge judges `dimension` (a catalog name, or a free-text preference for judges of those)."""
        return dimension in self.dimensions()

    def check(self, dimension: str) -> None:
        """Raise a clear error when this judge cannot judge `dimension`."""
        if not self.judges(dimension):
            raise PersonalignError(f"judge {self.name} cannot judge {dimension!r}; it judges: "
                                   f"{', '.join(self.dimensions())}")
