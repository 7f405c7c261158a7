"""The answers a run needs: one Job per (method, preference, beta, prompt), and each method's requests.

Methods, and what they cost per generated token beyond one base forward row:
    base           the base model, no preference                                   [+0]
    prompt         preference prompting                                            [+0]
    pad            PAD, released reward (head-only PersRM on the base: same row)   [+0; +1 per extra component]
    pad-decoupled  PAD, reference = the PersRM without the preference              [+1 row]
    fusion         log p_base + beta (log p_guide - log p_base), whole vocabulary  [+1 row per component]
    args           ARGS: z + beta * R(prompt, answer + candidate), R = reward_judge [k judge calls]
    best-of-n      N sampled prompted answers, the one reward_judge likes best     [N answers + N judge calls]
    soups          LoRA policies per dimension, parameters averaged (soups.py)      [+0; LoRA on every layer]
"""

from dataclasses import dataclass

from ..decoding.request import GenerationRequest
from ..preferences import Preference

GUIDED = ("pad", "pad-decoupled", "fusion", "args")  # methods whose beta is swept
USES_PERSRM = ("pad", "pad-decoupled", "fusion")
NONE = "none"  # the base method's preference label: its answers serve every preference's column


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
    methods = list(dict.fromkeys(config.methods + [config.baseline]))
    jobs = []
    for method in methods:
        preferences = [NONE] if method == "base" else config.preferences
        betas = config.beta if method in GUIDED else [0.0]
        for preference in preferences:
            for beta in betas:
                jobs += [Job(method, preference, float(beta), item.id, item.prompt) for item in prompts]
    return jobs


def baseline_key(answer: dict, config) -> str:
    """The key of the baseline answer that `answer` (a generations.jsonl record) is compared with."""
    beta = config.beta[0] if config.baseline in GUIDED else 0.0
    preference = NONE if config.baseline == "base" else answer["preference"]
    return Job(config.baseline, preference, beta, answer["prompt_id"], answer["prompt"]).key


def requests_for(job: Job, config) -> list[GenerationRequest]:
    """The engine requests that produce this job's answer (N of them for best-of-n)."""
    common = dict(max_new_tokens=config.max_new_tokens, top_k=config.top_k)
    preference = Preference.none() if job.preference == NONE else Preference.parse(job.preference)
    if job.method == "best-of-n":
        return [GenerationRequest(job.prompt, preference, method="prompt", temperature=config.temperature,
                                  seed=config.seed + i, **common) for i in range(config.best_of_n)]
    if job.method == "soups":  # the merged weights carry the preference; the prompt is bare
        return [GenerationRequest(job.prompt, method="base", **common)]
    if job.method.startswith("pad"):
        reward = "decoupled" if job.method == "pad-decoupled" else "released"
        return [GenerationRequest(job.prompt, preference, method="pad", beta=job.beta, reward=reward, **common)]
    return [GenerationRequest(job.prompt, preference, method=job.method, beta=job.beta, **common)]


def settings_for(job: Job, config, identity: dict) -> dict:
    """Everything that decides this job's answer and only that (models and judges: `identity`, from
    evaluation.identity.run_identity), so that an answer on file is reused exactly when it would come out the same."""
    settings = dict(method=job.method, beta=job.beta, prompt=job.prompt, base=identity["base"],
                    dtype=identity["dtype"], max_new_tokens=config.max_new_tokens)
    if job.method in GUIDED + ("best-of-n",):  # greedy base, prompt and soups take the argmax whatever k is
        settings["top_k"] = config.top_k
    if job.method not in ("base", "soups"):  # the others put the preference in PAD's template
        settings["template"] = identity["template"]
    if job.method in USES_PERSRM:
        settings["persrm"] = identity["persrm"]
    if job.method in ("args", "best-of-n"):
        settings["reward_judge"] = identity["reward_judge"]
    if job.method == "best-of-n":
        settings.update(best_of_n=config.best_of_n, temperature=config.temperature, seed=config.seed)
    if job.method == "soups":
        settings["soups"] = identity["soups"]
    return settings
