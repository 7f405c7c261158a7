"""MetaAlign's policy trainer (`personalign train-policy`): SFT on the preferred answers under their meta-prompts,
then (recipe sft-dpo) DPO from the SFT policy on the label-flipped pairs, both with TRL's trainers and a LoRA adapter
(peft), on accelerate: the same code on a CPU or GPUs.

The reference of DPO is the SFT policy (its adapter merged into a frozen copy of the base), and DPO goes on training
the SFT adapter, so the policy is one adapter over the base. With no SFT steps, DPO starts straight from a saved
policy (`--sft-init`): its adapter stands for the SFT stage's, as the reference too. Rows read the meta-prompt as inference renders it
(meta_prompt.render_meta_ids: a system message where the chat template has that role).

Resumable: each stage checkpoints every `save_every` steps (transformers' Trainer checkpoints: adapter, optimizer,
schedule, random generators, position); `--resume` continues the stage in progress from its last checkpoint and
skips a finished one (its adapter/ is there). Metrics go to metrics.jsonl as JSON lines, one per log and evaluation
(stage, step, loss; held-out loss, and for DPO held-out accuracy and margin); lines past the checkpoint a run
resumes from are dropped, since it writes them again.

DPO's pairs are the data's (train.jsonl) or, with `dpo_pairs` sampled, answers the SFT policy samples, ranked by a
judge (training/sampled_pairs.py), or with `dpo_pairs` stated, its answers to implicit contexts against its answers
under the preference stated (training/stated_pairs.py).

Output directory: policy_config.json, metrics.jsonl, sft/ and dpo/ (checkpoints, then adapter/), sampled_pairs.jsonl
(dpo_pairs sampled or stated), policy/ (the MetaAlign policy: the last stage's adapter and policy.json).
"""

import copy
import functools
import json
import random
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..data.metaalign import read_meta_pairs, read_sft_examples
from ..errors import PersonalignError
from ..meta_prompt import MetaPrompt, has_system_role, render_meta_ids
from ..metaalign_policy import ADAPTER_DIR, POLICY_FILE, POLICY_FORMAT, check_policy_dir, policy_base
from ..models import EMBEDDED_MODEL_NAME, load_causal_lm
from ..records import append_records, read_records, write_directory_atomic, write_records_atomic
from ..sharding import process_state
from .checkpoint import continues_run
from .policy_config import JUDGED_PAIRS, LORA_MODULES, DPOStage, PolicyConfig, SFTStage, outcome_settings
from .sampled_pairs import Closeness, PairJudge, sampled_pairs
from .stated_pairs import stated_pairs

SETTINGS_FILE = "policy_config.json"
METRICS_FILE = "metrics.jsonl"
POLICY_DIR = "policy"


def train_policy(run: PolicyConfig, sft: SFTStage, dpo: DPOStage, resume: bool = False, progress: bool = True,
                 model=None, tokenizer=None, pair_judge: PairJudge | None = None,
                 closeness: Closeness | None = None) -> dict:
    """Train (or resume) a MetaAlign policy; returns the last held-out metrics of each stage. `model`/`tokenizer`
    skip loading `run.base` (tests pass tiny models). `pair_judge` ranks sampled answers (`dpo_pairs` sampled;
    training/sampled_pairs.py) and `closeness` how close each stays to the question (the command wires
    evaluation.meta_pair_closeness; needed unless dpo_min_on_question is 0 and dpo_chosen_as_close off)."""
    for config in (run, sft, dpo):
        config.validate()
    if sft.sft_steps == 0 and not (sft.sft_init and run.recipe == "sft-dpo"):
        raise PersonalignError("sft_steps 0 means DPO straight from a saved policy: give --sft-init and recipe sft-dpo")
    if run.recipe == "sft-dpo" and dpo.dpo_pairs in JUDGED_PAIRS and pair_judge is None:
        raise PersonalignError(f"{dpo.dpo_pairs} DPO pairs need a judge (pair_judge; the command line wires the "
                               "evaluation's)")
    if run.recipe == "sft-dpo" and dpo.dpo_pairs in JUDGED_PAIRS and _guards_question(dpo) and closeness is None:
        raise PersonalignError("dpo_min_on_question and dpo_chosen_as_close need an on-question check (closeness; "
                               "the command line wires the evaluation's), or set them to 0 and off")
    out, settings = Path(run.out), outcome_settings(run, sft, dpo)
    _check_out(out, settings, resume)
    processes = process_state(cpu=_on_cpu(run))
    processes.wait_for_everyone()  # every process has checked --out before the first one writes to it
    init = _init_adapter(sft.sft_init, run) if sft.sft_init else None
    data = Path(run.data)
    sft_train, sft_valid = (read_sft_examples(data / f"sft_{split}.jsonl") for split in ("train", "valid"))
    pairs = {split: read_meta_pairs(data / f"{split}.jsonl") for split in ("train", "valid")} \
        if run.recipe == "sft-dpo" else {}
    if model is None:
        model, tokenizer = load_causal_lm(run.base, device="cpu", dtype="fp32")  # the Trainer places it
    if processes.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    system_role = has_system_role(tokenizer)
    if sft.sft_steps:
        summary = {"sft": _stage(
            "sft", out, run, resume, progress, tokenizer, model,
            train=[_sft_row(e, tokenizer, system_role) for e in sft_train],
            valid=_sample([_sft_row(e, tokenizer, system_role) for e in sft_valid], run), steps=sft.sft_steps,
            lr=sft.sft_lr, eval_every=sft.sft_eval_every, by_length=sft.sft_batching == "by-length", init=init)}
    else:  # DPO straight from the saved policy: its adapter stands for the SFT stage's outcome
        _adopt_adapter(init, out / "sft" / ADAPTER_DIR, processes)
        summary = {"sft": {}}
    if run.recipe == "sft-dpo":
        train_pairs = pairs["train"]
        if dpo.dpo_pairs in JUDGED_PAIRS:
            with processes.main_process_first():  # the first samples and writes them, the others read them
                train_pairs = _sampled_pairs(out, run, dpo, model, tokenizer, train_pairs, pair_judge,
                                             closeness, progress)
        summary["dpo"] = _stage(
            "dpo", out, run, resume, progress, tokenizer, model,
            train=[_dpo_row(p, system_role) for p in train_pairs],
            valid=_sample([_dpo_row(p, system_role) for p in pairs["valid"]], run), steps=dpo.dpo_steps,
            lr=dpo.dpo_lr, eval_every=dpo.dpo_eval_every, beta=dpo.dpo_beta)
    if processes.is_main_process:
        _save_policy(out, run)
    processes.wait_for_everyone()
    return summary


def _guards_question(dpo: DPOStage) -> bool:
    return bool(dpo.dpo_min_on_question or dpo.dpo_chosen_as_close)


def _sampled_pairs(out: Path, run: PolicyConfig, dpo: DPOStage, model, tokenizer, pairs, judge, closeness,
                   progress):
    """The pairs the SFT policy writes and the judge ranks (`dpo_pairs` sampled or stated)."""
    from peft import PeftModel

    sft_policy = PeftModel.from_pretrained(copy.deepcopy(model), out / "sft" / ADAPTER_DIR).eval()
    shared = dict(contexts=dpo.dpo_contexts, max_new_tokens=dpo.dpo_sample_tokens, batch_size=run.batch_size,
                  seed=run.seed, closeness=closeness if _guards_question(dpo) else None,
                  min_share=dpo.dpo_min_on_question, chosen_as_close=dpo.dpo_chosen_as_close, progress=progress)
    if dpo.dpo_pairs == "stated":
        return stated_pairs(out, sft_policy, tokenizer, pairs, judge, **shared)
    return sampled_pairs(out, sft_policy, tokenizer, pairs, judge, samples=dpo.dpo_samples,
                         temperature=dpo.dpo_temperature, rejected=dpo.dpo_rejected, **shared)


def _init_adapter(spec: str, run: PolicyConfig) -> Path:
    """The adapter of the saved policy SFT goes on training (`--sft-init`), checked before anything loads."""
    directory, base = check_policy_dir(spec), run.base or EMBEDDED_MODEL_NAME
    trained_over = policy_base(directory)
    if trained_over != base:
        raise PersonalignError(f"--sft-init {spec} was trained over {trained_over}, not over {base}")
    config = json.loads((directory / ADAPTER_DIR / "adapter_config.json").read_text())
    modules, attention = set(config.get("target_modules") or ()), set(LORA_MODULES["attention"])
    same_layers = modules == attention if run.lora_modules == "attention" else modules > attention
    if config.get("r") != run.lora_r or not same_layers:
        raise PersonalignError(f"--sft-init {spec}: its adapter has rank {config.get('r')} on "
                               f"{', '.join(sorted(modules))}; pass its --lora-r and --lora-modules")
    return directory / ADAPTER_DIR


def _adopt_adapter(init: Path, target: Path, processes) -> None:
    """A copy of a saved policy's adapter as a stage's outcome (once: a resumed run finds it there)."""
    if processes.is_main_process and not target.is_dir():
        write_directory_atomic(target, lambda tmp: shutil.copytree(init, tmp, dirs_exist_ok=True))
    processes.wait_for_everyone()


def _stage(name, out: Path, run: PolicyConfig, resume: bool, progress: bool, tokenizer, base, train, valid,
           steps: int, lr: float, eval_every: int, beta: float | None = None, by_length: bool = False,
           init: Path | None = None) -> dict:
    """Run one stage to `steps` (or skip it, done); returns its last held-out metrics from metrics.jsonl.
    `by_length`: batches of similar lengths; `init`: the adapter SFT starts from (else a new one)."""
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint

    directory, processes = out / name, process_state(cpu=_on_cpu(run))
    if not (directory / ADAPTER_DIR).is_dir():
        checkpoint = get_last_checkpoint(str(directory)) if resume and directory.is_dir() else None
        if processes.is_main_process:
            _trim_metrics(out / METRICS_FILE, name, int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0)
        common = dict(output_dir=str(directory), max_steps=steps, learning_rate=lr, seed=run.seed, data_seed=run.seed,
                      per_device_train_batch_size=run.batch_size, per_device_eval_batch_size=run.batch_size,
                      gradient_accumulation_steps=run.grad_accum, logging_steps=run.log_every,
                      save_steps=run.save_every, eval_strategy="steps", eval_steps=eval_every, report_to=[],
                      use_cpu=_on_cpu(run), max_length=run.max_length, disable_tqdm=not progress,
                      save_total_limit=2, train_sampling_strategy="group_by_length" if by_length else "random",
                      **_precision(run))
        callbacks = [_MetricsLog(out / METRICS_FILE, name)]
        if name == "sft":
            trainer = _sft_trainer(base, tokenizer, run, common, Dataset.from_list(train), Dataset.from_list(valid),
                                   callbacks, init)
        else:
            trainer = _dpo_trainer(base, tokenizer, out, common, beta, Dataset.from_list(train),
                                   Dataset.from_list(valid), callbacks)
        trainer.train(resume_from_checkpoint=checkpoint)
        if processes.is_main_process:
            write_directory_atomic(directory / ADAPTER_DIR, trainer.model.save_pretrained)
        processes.wait_for_everyone()
    evaluations = [r for r in read_records(out / METRICS_FILE) if r["stage"] == name and "eval_loss" in r]
    return evaluations[-1] if evaluations else {}


def _sft_trainer(base, tokenizer, run, common, train, valid, callbacks, init):
    from peft import LoraConfig, PeftModel
    from trl import SFTConfig, SFTTrainer

    if init is None:
        model, lora = copy.deepcopy(base), LoraConfig(r=run.lora_r, lora_alpha=2 * run.lora_r,
                                                      lora_dropout=run.lora_dropout,
                                                      target_modules=LORA_MODULES[run.lora_modules])
    else:
        model, lora = PeftModel.from_pretrained(copy.deepcopy(base), init, is_trainable=True), None
    # rows come tokenized (_sft_row): the loss is on the answer's tokens only
    return SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True),
                      train_dataset=train, eval_dataset=valid,
                      processing_class=tokenizer, peft_config=lora, callbacks=callbacks)


def _dpo_trainer(base, tokenizer, out, common, beta, train, valid, callbacks):
    """DPO from the SFT policy: its adapter trains on, the reference is the SFT policy frozen (adapter merged)."""
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    adapter = out / "sft" / ADAPTER_DIR
    policy = PeftModel.from_pretrained(copy.deepcopy(base), adapter, is_trainable=True)
    reference = PeftModel.from_pretrained(copy.deepcopy(base), adapter).merge_and_unload().eval()
    return DPOTrainer(model=policy, ref_model=reference, args=DPOConfig(**common, beta=beta), train_dataset=train,
                      eval_dataset=valid, processing_class=tokenizer, callbacks=callbacks)


def _sft_row(example: dict, tokenizer, system_role: bool) -> dict:
    """Token ids: the meta-prompted conversation exactly as inference renders it, then the answer (the only tokens
    with a loss). The answer's end of turn follows only a whole answer: after one cut off at a token limit it would
    teach the policy to stop mid-sentence."""
    meta = MetaPrompt(example["system_info"], example["user_info"])
    prompt = render_meta_ids(tokenizer, example["prompt"], meta)
    answer = tokenizer(_answer_text(tokenizer, example, meta, system_role), add_special_tokens=False)["input_ids"]
    return {"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)}


def _answer_text(tokenizer, example: dict, meta: MetaPrompt, system_role: bool) -> str:
    """The answer as the chat template writes it after the generation prompt (with its end of turn), or the bare
    text of a truncated one."""
    if example.get("truncated"):
        return example["response"]
    if not getattr(tokenizer, "chat_template", None):
        return example["response"] + tokenizer.eos_token
    messages = meta.messages(example["prompt"], system_role)
    opening = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": example["response"]}],
                                          tokenize=False)
    if not whole.startswith(opening):
        raise PersonalignError("the chat template renders a conversation's opening differently once the answer "
                               "follows; SFT needs the answer to extend the prompt as inference renders it")
    return whole[len(opening):]


def _dpo_row(pair, system_role: bool) -> dict:
    return {"prompt": pair.meta_prompt.messages(pair.prompt, system_role),
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}]}


def _sample(rows: list, run: PolicyConfig) -> list:
    if not rows:
        raise PersonalignError(f"{run.data}: no held-out examples to evaluate on (an empty valid split)")
    return random.Random(run.seed).sample(rows, run.eval_limit) if len(rows) > run.eval_limit else rows


def _precision(run: PolicyConfig) -> dict:
    """"auto": bf16 autocast (TRL's default) on a GPU with bf16, and on a CPU where a bf16 training matmul is faster
    than fp32's. Two AVX2 CPUs without native bf16 differ: on one bf16 SFT steps took 0.7 of fp32's, on another
    torch fell back to its reference gemm and a step took 30 times as long (README), so the CPU is asked."""
    precision = run.mixed_precision
    if precision == "auto":
        fast = _cpu_bf16_is_faster() if _on_cpu(run) else torch.cuda.is_bf16_supported()
        precision = "bf16" if fast else "no"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


@functools.cache
def _cpu_bf16_is_faster() -> bool:
    """Whether a linear layer's forward and backward under bf16 autocast beat fp32 on this CPU (0.4 s to ask where
    bf16 is slow)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 576, generator=generator, requires_grad=True)
    w = torch.randn(576, 576, generator=generator, requires_grad=True)

    def seconds(bf16: bool) -> float:
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = torch.nn.functional.linear(x, w)
            y.float().sum().backward()
            best = min(best, time.perf_counter() - began)
        return best
    return seconds(True) < seconds(False)


def _on_cpu(run: PolicyConfig) -> bool:
    return run.device == "cpu" or (run.device is None and not torch.cuda.is_available())


class _MetricsLog(TrainerCallback):
    """Each log of the Trainer (training loss, held-out evaluation) as one JSON line; training lines also carry the
    wall-clock seconds per step since the previous one."""

    def __init__(self, path: Path, stage: str):
        self.path, self.stage = path, stage
        self.since = None  # (time, step) of the previous training line

    def on_train_begin(self, args, state, control, **kwargs):
        self.since = (time.perf_counter(), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if not state.is_world_process_zero or not ("loss" in values or any(k.startswith("eval_") for k in values)):
            return  # the Trainer's closing summary (train_runtime, total_flos) is no metrics line
        if "loss" in values and self.since is not None and state.global_step > self.since[1]:
            now = time.perf_counter()
            values["seconds_per_step"] = (now - self.since[0]) / (state.global_step - self.since[1])
            self.since = (now, state.global_step)
        append_records(self.path, [{"stage": self.stage, "step": state.global_step, **values}])


def _trim_metrics(path: Path, stage: str, step: int) -> None:
    """Drop this stage's lines past `step` (the checkpoint a run resumes from) and every later stage's."""
    if path.exists():
        order = ["sft", "dpo"]
        keep = [r for r in read_records(path) if order.index(r["stage"]) < order.index(stage)
                or (r["stage"] == stage and r["step"] <= step)]
        write_records_atomic(path, keep)


def _check_out(out: Path, settings: dict, resume: bool) -> None:
    if continues_run(out, SETTINGS_FILE, settings, resume, "policy run"):
        return
    if resume and out.is_dir() and any(out.iterdir()):
        raise PersonalignError(f"--resume: {out} holds no policy run ({SETTINGS_FILE} is missing)")


def _save_policy(out: Path, run: PolicyConfig) -> None:
    """policy/: the last stage's adapter and what it is (read by --policy)."""
    last = out / ("dpo" if run.recipe == "sft-dpo" else "sft") / ADAPTER_DIR

    def fill(directory: Path) -> None:
        shutil.copytree(last, directory / ADAPTER_DIR)
        (directory / POLICY_FILE).write_text(json.dumps({"format": POLICY_FORMAT, "version": 1, "recipe": run.recipe,
                                                         "base": run.base or EMBEDDED_MODEL_NAME}, indent=2) + "\n")

    write_directory_atomic(out / POLICY_DIR, fill)
