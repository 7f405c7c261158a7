"""The answers a run needs: one Job per (method, preference, beta, prompt), and each method's requests.

Every engine method (decoding/methods.py) is an evaluation method as itself; `EVAL_METHODS` adds the ones that are
configurations of an engine method (pad-decoupled, best-of-n, soups), each with its cost per generated token beyond
one base forward row. `personalign eval --help` and the README's table list them.
"""

from dataclasses import dataclass

from ..decoding import methods
from ..decoding.methods import Method, Rule
from ..decoding.request import GenerationRequest
from ..preferences import Preference
from ..prompts import pad_prompt

NONE = "none"  # the preference label of a method that reads none: its answers serve every preference's column


@dataclass(frozen=True)
class EvalMethod:
    """An evaluation method: an engine method (`engine`, from the registry) and the settings that configure it."""

    name: str
    description: str
    cost: str  # per generated token, beyond one base forward row
    engine: str
    reward: str | None = None  # the PAD reward form it fixes (None: the engine method has no reference row)
    samples: bool = False  # best-of-n: best_of_n sampled answers (T = temperature), reward_judge picks one
    merged_weights: bool = False  # soups: the preference is in merged LoRA weights (soups.py); the prompt is bare

    @property
    def decoding(self) -> Method:
        return methods.get(self.engine)

    @property
    def guided(self) -> bool:  # its beta is swept
        return self.decoding.guided

    def betas(self, config) -> list[float]:
        """The betas it answers at: the run's sweep, else its own default (0 for a method beta does not weigh)."""
        if not self.guided:
            return [0.0]
        return [float(b) for b in config.beta] or [self.decoding.default_beta]

    @property
    def uses_persrm(self) -> bool:
        return self.decoding.uses_persrm

    @property
    def uses_reward_judge(self) -> bool:
        return self.samples or self.decoding.rule is Rule.ARGS

    @property
    def per_preference(self) -> bool:
        """Whether it answers each preference (else one answer, preference NONE, serves them all)."""
        return self.decoding.needs_preference or self.merged_weights

    def answered_under(self, preference: str) -> str:
        """The preference its answers for `preference` were written under: NONE where one answer serves them all."""
        return preference if self.per_preference else NONE

    @property
    def reads_meta_prompt(self) -> bool:
        return self.decoding.reads_system_info

    @property
    def reads_template(self) -> bool:
        """Whether a row reads PAD's prompt template (the run identity's `template`)."""
        return pad_prompt in self.decoding.renderers


def _as_itself(m: Method) -> EvalMethod:
    # a method with a reference row is evaluated under the released reward form unless it fixes its own;
    # pad-decoupled is the other
    reward = (m.reward_form or "released") if m.reference_row else None
    return EvalMethod(m.name, m.description, m.cost, m.name, reward=reward)


EVAL_METHODS: dict[str, EvalMethod] = {e.name: e for e in [
    *(_as_itself(m) for m in methods.REGISTRY.values()),
    EvalMethod("pad-decoupled", "PAD with the PersRM without the preference as reference", "+1 row", "pad",
               reward="decoupled"),
    EvalMethod("best-of-n", "N sampled prompted answers, the one reward_judge likes best",
               "N answers + N judge calls", "prompt", samples=True),
    EvalMethod("soups", "Personalized Soups: LoRA policies per dimension, parameters averaged with the "
               "preference's weights, bare prompt", "+0; LoRA on every adapted layer", "base", merged_weights=True),
]}
METHODS = tuple(EVAL_METHODS)
GUIDED = tuple(n for n, e in EVAL_METHODS.items() if e.guided)  # methods whose beta is swept
USES_PERSRM = tuple(n for n, e in EVAL_METHODS.items() if e.uses_persrm)


def methods_of(config) -> list[EvalMethod]:
    """The methods a run answers with: its methods and its baseline, once each, in order."""
    return [EVAL_METHODS[m] for m in dict.fromkeys(config.methods + [config.baseline])]


@dataclass(frozen=True)
class Job:
    method: str
    preference: str
    beta: float
    prompt_id: str
    prompt: str

    @property
    def key(self) -> str:
        return f"{self.method}|{self.beta:g}|{self.preference}|{self.prompt_id}"


def plan_jobs(config, prompts) -> list[Job]:
    jobs = []
    for method in methods_of(config):
        preferences = config.preferences if method.per_preference else [NONE]
        for preference in preferences:
            for beta in method.betas(config):
                jobs += [Job(method.name, preference, float(beta), item.id, item.prompt) for item in prompts]
    return jobs


def baseline_key(answer: dict, config) -> str:
    """The key of the baseline answer that `answer` (a generations.jsonl record) is compared with."""
    baseline = EVAL_METHODS[config.baseline]
    beta = baseline.betas(config)[0]
    preference = baseline.answered_under(answer["preference"])
    return Job(config.baseline, preference, beta, answer["prompt_id"], answer["prompt"]).key


def requests_for(job: Job, config) -> list[GenerationRequest]:
    """The engine requests that produce this job's answer (N of them for best-of-n)."""
    method = EVAL_METHODS[job.method]
    common = dict(max_new_tokens=config.max_new_tokens, top_k=config.top_k)
    if method.reads_meta_prompt:
        common["system_info"] = config.system_info
    # the merged weights of soups carry the preference; the prompt is bare
    bare = job.preference == NONE or method.merged_weights
    preference = Preference.none() if bare else Preference.parse(job.preference)
    if method.samples:
        return [GenerationRequest(job.prompt, preference, method=method.engine, temperature=config.temperature,
                                  seed=config.seed + i, **common) for i in range(config.best_of_n)]
    if method.decoding.rule is Rule.PAD:
        common["end_of_turn"] = config.end_of_turn
    return [GenerationRequest(job.prompt, preference, method=method.engine, beta=job.beta, reward=method.reward,
                              **common)]


def settings_for(job: Job, config, identity: dict) -> dict:
    """Everything that decides this job's answer and only that (models and judges: `identity`, from
    evaluation.identity.run_identity), so that an answer on file is reused exactly when it would come out the same."""
    method = EVAL_METHODS[job.method]
    settings = dict(method=job.method, beta=job.beta, prompt=job.prompt, base=identity["base"],
                    dtype=identity["dtype"], max_new_tokens=config.max_new_tokens)
    if method.guided or method.samples:  # greedy unguided decoding takes the argmax whatever k is
        settings["top_k"] = config.top_k
    if method.reads_template:
        settings["template"] = identity["template"]
    if method.reads_meta_prompt:
        settings.update(meta_rendering=identity["meta_rendering"], system_info=config.system_info)
    if method.uses_persrm:
        settings["persrm"] = identity["persrm"]
    if method.decoding.rule is Rule.PAD and config.end_of_turn != "reward":  # answers made before the flag: reward
        settings["end_of_turn"] = config.end_of_turn
    if method.decoding.base_adapter:
        settings["policy"] = identity["policy"]
    if method.uses_reward_judge:
        settings["reward_judge"] = identity["reward_judge"]
    if method.samples:
        settings.update(best_of_n=config.best_of_n, temperature=config.temperature, seed=config.seed)
    if method.merged_weights:
        settings["soups"] = identity["soups"]
    return settings
