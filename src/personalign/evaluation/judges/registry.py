"""Judges by name, as users write them on the command line or in a config.

    offline                      textstat/vaderSentiment judges of the six P-SOUPS dimensions
    hf:PATH_OR_ID[@dim,dim]      a transformers sequence-classification reward model (default dimension "reward")
    rm:DIR                       a reward model trained by `personalign train-judge`
    llm:MODEL@BASE_URL           an OpenAI-compatible chat endpoint with the P-SOUPS pairwise judge prompts
    relevance                    free-text preferences: embedding similarity of the answer to the preference text
"""

from ...errors import PersonalignError
from .base import Judge

KINDS = ("offline", "relevance", "hf:", "rm:", "llm:")


def load_judge(spec: str) -> Judge:
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if spec == "offline":
        from .offline import OfflineJudge
        return OfflineJudge()
    if spec == "relevance":
        from .relevance import RelevanceJudge
        return RelevanceJudge()
    if kind == "hf" and arg:
        from .hf_reward_model import HFRewardModelJudge
        return HFRewardModelJudge.from_spec(arg)
    if kind == "rm" and arg:
        from .trained import TrainedRMJudge
        return TrainedRMJudge.load(arg)
    if kind == "llm" and arg:
        from .llm import LLMJudge
        return LLMJudge.from_spec(arg)
    raise PersonalignError(f"unknown judge {spec!r}; judges are: offline, relevance, hf:PATH_OR_ID[@dims], rm:DIR, "
                           "llm:MODEL@BASE_URL")
