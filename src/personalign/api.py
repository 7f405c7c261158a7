"""The library's front door: load a base model and a PersRM into an engine, answer prompts.

    from personalign import load_engine, GenerationRequest
    engine = load_engine()  # the embedded SmolLM2-135M-Instruct guided by the PersRM trained for it
    [result] = engine.generate([GenerationRequest("Explain DNS", preference="concise", beta=1.0)])
"""

import copy
from pathlib import Path

from .decoding.engine import DEFAULT_REWARD_FORM, Engine, end_of_turn_ids
from .decoding.logits_processor import PADLogitsProcessor
from .decoding.request import DEFAULT_END_OF_TURN, END_OF_TURN
from .errors import PersonalignError
from .metaalign_policy import attach_policy, check_policy_dir, policy_base
from .models import load_causal_lm, resolve_model_source
from .reward_model import PersonalizedRewardModel, is_saved_persrm, load_saved, read_config

UNTRAINED = "untrained"  # an identity-head PersRM on the base model itself
# The PersRM trained for the embedded SmolLM2 (`personalign train-rm`; README "Training a PersRM"): LoRA + head.
DEFAULT_PERSRM = Path(__file__).parent / "default_persrm" / "smollm2-135m-instruct"
# The MetaAlign policy trained for the embedded SmolLM2 (`personalign train-policy`; README "MetaAlign").
DEFAULT_POLICY = Path(__file__).parent / "default_policy" / "smollm2-135m-instruct"


def default_persrm(base_source: str) -> str:
    """The PersRM used when none is named: the shipped trained one over the embedded model, else untrained."""
    if DEFAULT_PERSRM.is_dir() and base_source == resolve_model_source(None):
        return str(DEFAULT_PERSRM)
    return UNTRAINED


def default_policy(base_source: str) -> str | None:
    """The MetaAlign policy used when none is named: the shipped one over the embedded model, else none."""
    if DEFAULT_POLICY.is_dir() and base_source == resolve_model_source(None):
        return str(DEFAULT_POLICY)
    return None


def resolve_policy(spec: str | None, base_source: str) -> str | None:
    """The policy directory a `--policy` spec names over `base_source`: None = `default_policy`; "untrained" = none."""
    spec = default_policy(base_source) if spec is None else spec
    return None if spec in (None, UNTRAINED) else spec


def load_persrm(spec: str | None, base_model, base_source: str, *, device=None, dtype=None):
    """The PersRM named by `spec`: None = `default_persrm(base_source)`; "untrained" = identity head on the base
    (weights shared); a saved
    PersRM directory (shares the base's weights when its backbone is the base); any other causal-LM dir or hub id
    = that model as a separate backbone with an identity head."""
    if spec is None:
        spec = default_persrm(base_source)
    if spec == UNTRAINED:
        return PersonalizedRewardModel(base_model, base_source)
    source = resolve_model_source(spec, persrm=True)
    if is_saved_persrm(source):
        backbone_name = read_config(source)["backbone"]
        if resolve_model_source(backbone_name) == base_source:
            return load_saved(source, base_model)
        backbone, _ = load_causal_lm(backbone_name, device=device, dtype=dtype)
        return load_saved(source, backbone)
    backbone, _ = load_causal_lm(source, device=device, dtype=dtype)
    return PersonalizedRewardModel(backbone, source)


def load_engine(base: str | None = None, persrm: str | None = None, *, policy: str | None = None, device=None,
                dtype=None, reward_form: str = DEFAULT_REWARD_FORM, sequence_reward=None, **limits) -> Engine:
    """An engine over the base model `base` (None = the embedded default) guided by the PersRM `persrm` (and, for
    the `args` method, by `sequence_reward`), with the MetaAlign policy `policy`: a saved policy directory; None =
    `default_policy(base)` (the shipped one for the embedded SmolLM2, else none); "untrained": none, so the
    metaalign methods are refused and meta-prompting is the untrained rendering. `limits`: the Engine's admission
    limits (max_running, max_prefill_tokens, max_prompt_tokens)."""
    base_source = resolve_model_source(base)
    if persrm not in (None, UNTRAINED):
        resolve_model_source(persrm, persrm=True)  # a wrong directory is said before the base loads
    policy = resolve_policy(policy, base_source)
    policy = None if policy is None else str(check_policy_dir(policy))
    model, tokenizer = load_causal_lm(base_source, device=device, dtype=dtype)
    reward_model = load_persrm(persrm, model, base_source, device=device, dtype=dtype)
    carrier = attach_policy(model, reward_model, policy) if policy else None
    return Engine(model, tokenizer, reward_model, reward_form=reward_form, sequence_reward=sequence_reward,
                  policy=carrier, policy_source=policy, **limits)


def pad_logits_processor(model, persrm: str | None = None, *, beta: float = 1.0, top_k: int = 10,
                         end_of_turn: str = DEFAULT_END_OF_TURN, tokenizer=None) -> PADLogitsProcessor:
    """PAD as a logits processor for `model.generate`, set up the supported way. `persrm` as in `load_persrm`
    (None: the default for this model, the shipped trained PersRM for the embedded SmolLM2). A PersRM whose LoRA
    adapter would sit on `model` is loaded on a copy of it (one more copy of the weights), so `model.generate`
    stays the plain base; a MetaAlign policy's `model` (load_policy) gets its PersRM on a copy of the bare base.
    `processor.prepare(tokenizer, prompts, preference)` gives the inputs (method="metaalign-pad" for a policy).
    end_of_turn="base" (default) leaves the end of turn to the base (README, How PAD is decoded): the end tokens
    are the model's generation config's, and the tokenizer's when `tokenizer` is given, as the engine's; "reward" is
    PAD's released rule."""
    if end_of_turn not in END_OF_TURN:
        raise PersonalignError(f"unknown end_of_turn {end_of_turn!r}; choose one of {', '.join(END_OF_TURN)}")
    from peft import PeftModel

    base_source = model.name_or_path
    spec = persrm if persrm is not None else default_persrm(base_source)
    if isinstance(model, PeftModel):  # a MetaAlign policy (load_policy): the PersRM reads the base's own weights
        backbone = copy.deepcopy(model).unload()
    else:
        backbone = copy.deepcopy(model) if _adapter_over(spec, base_source) else model
    reward_model = load_persrm(spec, backbone, base_source, device=model.device, dtype=model.dtype)
    end_ids = end_of_turn_ids(model.generation_config, tokenizer) if end_of_turn == "base" else ()
    return PADLogitsProcessor(reward_model, beta=beta, top_k=top_k, model=model, end_ids=end_ids)


def load_policy(policy: str | None = None, base: str | None = None, *, device=None, dtype=None):
    """(model, tokenizer): the base (None: the one the policy was trained on) carrying the MetaAlign policy's
    adapter (None: the one shipped for the embedded SmolLM2), for your own `model.generate`: with
    `meta_prompt_inputs(tokenizer, prompts, preference)` that is method metaalign; with
    `pad_logits_processor(model)` and `processor.prepare(..., method="metaalign-pad")`, metaalign-pad."""
    if policy is None:
        policy = default_policy(resolve_model_source(None))
        if policy is None:
            raise PersonalignError("this installation ships no MetaAlign policy: name one (train-policy's RUN/policy)")
    directory = check_policy_dir(policy)
    model, tokenizer = load_causal_lm(resolve_model_source(base or policy_base(directory)), device=device,
                                      dtype=dtype)
    return attach_policy(model, None, directory), tokenizer


def _adapter_over(spec: str, base_source: str) -> bool:
    """Whether `load_persrm(spec, base, base_source)` would inject a LoRA adapter into `base` itself."""
    directory = str(Path(spec).expanduser())  # a saved PersRM is always a local directory
    if spec == UNTRAINED or not is_saved_persrm(directory):
        return False
    config = read_config(directory)
    return config["adapter"] and resolve_model_source(config["backbone"]) == base_source
