"""The method registry: every decoding method is one declaration, read by the engine, the request and the CLI.

A method from the literature is an assignment of a config, not a subclass: which prompt each of its rows reads
(a renderer from prompts.py), which rows it needs beyond the base row, whether beta applies, its scoring rule and
its documented cost per generated token. The engine (engine.py) plans rows and scores tokens from these fields
only; adding a method is adding a `Method` to `REGISTRY` (`register`), with no edit to the loop.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Callable

from ..errors import PersonalignError
from ..meta_prompt import meta_prompt_row, system_info_row
from ..metaalign_policy import POLICY_ADAPTER
from ..prompts import bare_prompt, pad_prompt

# (tokenizer, request, principle) -> the token ids one row reads (prompts.bare_prompt, prompts.pad_prompt,
# meta_prompt.meta_prompt_row); `principle` is the preference text the row shows (one component's, for a mix)
Renderer = Callable[..., list[int]]


class Rule(Enum):
    """How a guided request's candidates are scored in steps 2-3 of the loop (formulas: rules.py)."""

    PLAIN = "plain"  # score = z_base over the base's top-k: the base's own token, greedy or sampled
    PAD = "pad"  # score = z_base + beta * (sum_i w_i l_guide_i - l_ref) over the base's top-k (rules.pad_reward)
    ARGS = "args"  # score = z_base + beta * R(prompt, answer so far + candidate) over the base's top-k
    FUSION = "fusion"  # top-k of log p_base + beta * sum_i w_i (log p_guide_i - log p_base) (rules.fusion_logits)


@dataclass(frozen=True)
class Method:
    name: str
    description: str  # one line: the CLI's --method help and the docs
    label: str  # how an answer is titled beside others (generate), formatted with beta
    cost: str  # extra forward rows / reward calls per generated token, beyond the base row
    base_row: Renderer  # what the base row reads (the preference is passed; `bare_prompt` ignores it)
    rule: Rule = Rule.PLAIN
    guided: bool = False  # beta weighs a guide against the base (beta = 0 is then the base's top-k argmax)
    guide_rows: Renderer | None = None  # PersRM rows, one per preference component (one for a single preference)
    reference_row: Renderer | None = None  # the PersRM's reference row under the decoupled reward form
    sequence_row: Renderer | None = None  # the row a KV-cached sequence reward model (ARGS) follows
    base_adapter: str | None = None  # the adapter the base row runs through (the MetaAlign policy's)
    guide_adapter: str | None = None  # the adapter guide and reference rows run through (None: the PersRM's)
    reward_form: str | None = None  # the PAD reward form the method fixes (None: the request's or the engine's)
    default_beta: float = 1.0  # the beta a request that names none gets (guided methods; README: where measured)
    needs_preference: bool = True

    def __post_init__(self):
        if (self.rule is not Rule.PLAIN) != self.guided:
            raise PersonalignError(f"method {self.name!r}: a scoring rule other than plain is what beta weighs, so "
                                   "guided must be true exactly when the rule is not plain")
        if self.rule in (Rule.PAD, Rule.FUSION) and self.guide_rows is None:
            raise PersonalignError(f"method {self.name!r}: the {self.rule.value} rule reads PersRM rows; declare "
                                   "guide_rows")

    @property
    def reads_system_info(self) -> bool:
        """Whether a row reads a meta-prompt, whose System Info a request may set."""
        return bool({meta_prompt_row, system_info_row} & self.renderers)

    @property
    def uses_persrm(self) -> bool:
        return self.guide_rows is not None and self.guide_adapter is None

    @property
    def renderers(self) -> set[Renderer]:
        return {r for r in (self.base_row, self.guide_rows, self.reference_row, self.sequence_row) if r}


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (its name must be new)."""
    if method.name in REGISTRY:
        raise PersonalignError(f"method {method.name!r} is already registered")
    REGISTRY[method.name] = method
    return method


def names(guided: bool | None = None) -> tuple[str, ...]:
    """The registered methods' names (only the guided ones, or only the others, when `guided` is given)."""
    return tuple(n for n, m in REGISTRY.items() if guided is None or m.guided == guided)


def default_betas() -> str:
    """The guided methods' default beta, for help texts: "1" where all agree, else "1; metaalign-cfg 0.75"."""
    usual = REGISTRY[DEFAULT].default_beta
    others = [f"{n} {m.default_beta:g}" for n, m in REGISTRY.items() if m.guided and m.default_beta != usual]
    return "; ".join([f"{usual:g}"] + others)


def get(name: str) -> Method:
    """The declaration of method `name`; an unknown name is refused with the registry's names."""
    if name not in REGISTRY:
        raise PersonalignError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


register(Method(
    "pad", "PersRM-guided decoding: z_base + beta * r over the base's top-k", "PAD, beta={beta:g}",
    "none released with a head-only PersRM on the base (same row), else +1 row per preference component; "
    "+1 row for the decoupled reference",
    base_row=pad_prompt, rule=Rule.PAD, guided=True, guide_rows=pad_prompt, reference_row=bare_prompt))
register(Method(
    "prompt", "preference prompting: the preference in PAD's prompt template, plain decoding",
    "preference prompting", "none", base_row=pad_prompt))
register(Method(
    "base", "the base model, no preference", "base (no preference)", "none", base_row=bare_prompt,
    needs_preference=False))
register(Method(
    "fusion", "logit fusion (GenARM, DeRa, proxy-tuning; MOD for a mix): log p_base + beta * sum_i w_i "
    "(log p_PersRM_i - log p_base) over the whole vocabulary, the base reading no preference",
    "logit fusion, beta={beta:g}", "+1 row per preference component",
    base_row=bare_prompt, rule=Rule.FUSION, guided=True, guide_rows=pad_prompt))  # the guide carries the preference
register(Method(
    "args", "ARGS: z_base + beta * R(prompt, answer so far + candidate) over the base's top-k, R a judge",
    "ARGS, beta={beta:g}", "k reward calls (a KV-cached reward model: +1 row)",
    base_row=pad_prompt, rule=Rule.ARGS, guided=True, sequence_row=bare_prompt))  # R reads the bare conversation
register(Method(
    "meta-prompting", "MetaAlign's meta-prompt read by the base model, no trained policy: System Info, then the "
    "preference as User Info", "meta-prompting", "none", base_row=meta_prompt_row))
register(Method(
    "metaalign", "MetaAlign: the trained policy (the base with its adapter, --policy) reading the meta-prompt",
    "MetaAlign", "none (the policy's LoRA delta on the base row)", base_row=meta_prompt_row,
    base_adapter=POLICY_ADAPTER))
register(Method(
    "metaalign-pad", "PAD on top of the MetaAlign policy: z_policy + beta * r over the policy's top-k, the policy "
    "reading the meta-prompt and the PersRM PAD's template", "MetaAlign + PAD, beta={beta:g}",
    "+1 row per preference component (the PersRM reads another prompt than the policy); +1 for the decoupled "
    "reference", base_row=meta_prompt_row, base_adapter=POLICY_ADAPTER, rule=Rule.PAD, guided=True,
    guide_rows=pad_prompt, reference_row=bare_prompt))
register(Method(
    "metaalign-cfg", "MetaAlign with the User Info's pull amplified (classifier-free guidance): z_policy + beta * "
    "(l_policy - l_policy without User Info) over the policy's top-k; beta 0 is metaalign",
    "MetaAlign + guidance, beta={beta:g}", "+1 row (the policy reading System Info alone)",
    base_row=meta_prompt_row, base_adapter=POLICY_ADAPTER, rule=Rule.PAD, guided=True, guide_rows=meta_prompt_row,
    reference_row=system_info_row, guide_adapter=POLICY_ADAPTER, reward_form="decoupled",
    default_beta=0.75))  # the best of 0.5, 0.75 and 1 on koala_eval_50 (docs/metaalign-log.md, metaalign-cfg)

DEFAULT = "pad"  # with a preference
UNPERSONALIZED = "base"  # without one
