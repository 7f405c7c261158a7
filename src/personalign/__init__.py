"""personalign: align a language model's answers with each user's preferences at decoding time (PAD, MetaAlign)."""

from .api import load_engine, load_persrm, load_policy, pad_logits_processor
from .decoding.engine import Engine
from .decoding.logits_processor import PADLogitsProcessor, meta_prompt_inputs
from .decoding.request import GenerationRequest, GenerationResult
from .errors import PersonalignError
from .models import load_causal_lm
from .preferences import Preference
from .reward_model import PersonalizedRewardModel

__all__ = ["Engine", "GenerationRequest", "GenerationResult", "PADLogitsProcessor", "PersonalignError",
           "PersonalizedRewardModel", "Preference", "load_causal_lm", "load_engine", "load_persrm", "load_policy",
           "meta_prompt_inputs", "pad_logits_processor"]
