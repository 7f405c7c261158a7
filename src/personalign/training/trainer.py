"""The two-stage PersRM trainer (`personalign train-rm`); the code PAD never released.

Stage 1: preference-conditioned DPO on the token-level reward (training/dpo.py), training a LoRA adapter on the
backbone and the head W together. Stage 2: the adapter frozen, the head alone on the same loss. accelerate runs the
same loop on one CPU or on several GPUs (each process takes its own slice of every step's pairs; gradients are
averaged), with mixed precision where asked.

Resumable: every `save_every` steps the trainable weights, optimizer, schedule, random generators and position go
to one file, replaced atomically; the batches of a step are a pure function of (seed, stage, step), so a resumed run
reaches the same weights as one never killed. The checkpoint also holds the values of the steps since the last
"train" metrics line, so that the next one averages the same values as in an uninterrupted run. Metrics go to
metrics.jsonl as JSON lines; lines written after the checkpoint a run resumes from are dropped, since that run writes
them again.

Output directory: train_config.json, metrics.jsonl, checkpoint.pt, persrm/ (the trained PersRM, once done) and
summary.json (held-out accuracy per preference, before and after training).
"""

import functools
from contextlib import nullcontext
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.pairs import prompt_key, read_pairs_jsonl, split_pairs
from ..errors import PersonalignError
from ..records import append_records, read_records, write_records_atomic
from ..models import EMBEDDED_MODEL_NAME, load_causal_lm
from ..reward_model import PersonalizedRewardModel, check_adapter_shape, load_trained_weights
from .checkpoint import continues_run, load_state, restore_rng, restore_weights, save_state, set_trainable
from .config import TrainConfig
from .dpo import SequenceScorer, dpo_terms
from .features import PairIds, encode_pairs, pair_rows

SETTINGS_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PERSRM_DIR = "persrm"


@dataclass
class PairSets:
    train: list[PairIds]
    held_out: dict[str, list[PairIds]]  # "valid" (seen preferences, unseen prompts), "unseen" (held-out preferences)
    dropped: int


def read_pair_groups(config: TrainConfig) -> dict[str, list]:
    """The pairs, checked, as "train", "valid" (seen preferences, unseen prompts) and "unseen" (held-out
    preferences: their pairs leave the training set wherever they are)."""
    pairs = read_pairs_jsonl(config.train)
    if config.valid:
        train, valid = pairs, read_pairs_jsonl(config.valid)
    else:
        train, valid = split_pairs(pairs, config.valid_fraction, config.seed)
    held = set(config.hold_out)
    unknown = held - {p.preference for p in train + valid}
    if unknown:
        raise PersonalignError(f"--hold-out names preferences the pairs do not have: {', '.join(sorted(unknown))}")
    groups = {"train": [p for p in train if p.preference not in held],
              "valid": [p for p in valid if p.preference not in held],
              "unseen": [p for p in train + valid if p.preference in held]}
    if config.train_only:
        # no held-out preference and no held-out prompt: they would carry the held-out answers into training
        valid_prompts = {prompt_key(p) for p in valid}
        groups["train"] += [p for path in config.train_only for p in read_pairs_jsonl(path)
                            if p.preference not in held and prompt_key(p) not in valid_prompts]
    if not groups["train"]:
        raise PersonalignError(f"{config.train}: no training pairs left after the split and --hold-out")
    if not groups["valid"]:
        raise PersonalignError(f"{config.train}: no held-out pairs of the trained preferences: give --valid or a "
                               "larger --valid-fraction")
    return groups


def encode_groups(groups: dict[str, list], config: TrainConfig, tokenizer) -> PairSets:
    """Token ids of every group; the held-out ones cut to `eval_limit` pairs by a seeded sample."""
    reads_preference = config.reference == "with-preference"
    train, dropped = encode_pairs(groups["train"], tokenizer, config.max_length, reads_preference)
    if not train:
        raise PersonalignError(f"no training pair fits in --max-length {config.max_length} tokens")
    held_out = {}
    for name in ("valid", "unseen"):
        group = groups[name]
        if config.eval_limit is not None and len(group) > config.eval_limit:
            group = random.Random(config.seed).sample(group, config.eval_limit)
        encoded, lost = encode_pairs(group, tokenizer, config.max_length, reads_preference)
        dropped += lost
        if encoded:
            held_out[name] = encoded
    return PairSets(train, held_out, dropped)


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, stage: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + stage * 10_007 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def batch_indices(n: int, batch_size: int, micro_step: int, seed: int, stage: int, world: int, rank: int) -> list[int]:
    """The pairs of one process's micro-batch: a stream of seeded shuffles (a new one each epoch), cut in order."""
    start = (micro_step * world + rank) * batch_size
    return [_permutation(n, seed, stage, pos // n)[pos % n] for pos in range(start, start + batch_size)]


@torch.no_grad()
def evaluate(persrm, pairs: list[PairIds], config: TrainConfig, pad_id: int, device) -> dict:
    """Loss, preference accuracy (chosen's summed token reward above rejected's; ties half) and mean reward margin
    over held-out pairs, overall and per preference."""
    scorer = SequenceScorer(persrm, train_backbone=False)
    was_training = persrm.training
    persrm.eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i].policy_prompt) + len(pairs[i].chosen))
    per_pair = {}
    for start in range(0, len(order), 2 * config.batch_size):
        batch = [pairs[i] for i in order[start:start + 2 * config.batch_size]]
        policy, reference = pair_rows(batch, pad_id)
        terms = dpo_terms(scorer(policy.to(device)), scorer(reference.to(device), reference=True), config.beta)
        for j, i in enumerate(order[start:start + 2 * config.batch_size]):
            per_pair[i] = (terms["loss"][j].item(), terms["correct"][j].item(), terms["margin"][j].item())
    persrm.train(was_training)
    result = _summarize(list(per_pair.values()))
    by_preference: dict[str, list] = {}
    for i, values in per_pair.items():
        by_preference.setdefault(pairs[i].preference, []).append(values)
    result["per_preference"] = {p: _summarize(v) for p, v in sorted(by_preference.items())}
    return result


def _summarize(values: list[tuple[float, float, float]]) -> dict:
    n = len(values)
    return {"pairs": n, "loss": sum(v[0] for v in values) / n, "accuracy": sum(v[1] for v in values) / n,
            "margin": sum(v[2] for v in values) / n}


def train_persrm(config: TrainConfig, resume: bool = False, progress: bool = True, model=None, tokenizer=None,
                 backbone_name: str | None = None) -> dict:
    """Train (or resume training) a PersRM as `config` says; returns the summary also written to summary.json.
    `model`/`tokenizer` skip loading `config.base` (tests pass tiny models)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    config.validate()
    if config.init:
        check_adapter_shape(config.init, config.lora_r, config.lora_targets)
    out = Path(config.out)
    state = _check_out(out, config, resume)
    groups = read_pair_groups(config)
    cpu = config.device == "cpu" or (config.device is None and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    if model is None:
        model, tokenizer = load_causal_lm(config.base, device=accelerator.device, dtype=config.dtype)
        backbone_name = config.base or EMBEDDED_MODEL_NAME
    data = encode_groups(groups, config, tokenizer)
    _start_out(out, config, state)
    persrm = new_persrm(model, backbone_name, config)
    persrm.to(accelerator.device).train()
    if state is not None:
        restore_weights(persrm, state["weights"])
        restore_rng(state["rng"])
    pad_id = pad_id_of(tokenizer)
    log = _MetricsLog(out / METRICS_FILE, accelerator.is_main_process)
    total = config.stage1_steps + config.stage2_steps
    done = 0 if state is None else (state["step"] if state["stage"] == 1 else config.stage1_steps + state["step"])
    bar = tqdm(total=total, initial=done, desc="train-rm", unit="step",
               disable=not progress or not accelerator.is_main_process)
    if state is None:  # the untrained PersRM's scores, for comparison
        log.evaluation(0, 0, evaluate(persrm, _group(data, "valid"), config, pad_id, accelerator.device),
                       _maybe(data, "unseen", persrm, config, pad_id, accelerator.device))
    for stage, steps in ((1, config.stage1_steps), (2, config.stage2_steps)):
        if state is not None and state["stage"] > stage:
            continue
        resumed = state if state is not None and state["stage"] == stage else None
        _run_stage(stage, steps, resumed, persrm, data, config, accelerator, log, bar, pad_id, out)
        state = None
    bar.close()
    summary = _finish(persrm, data, config, accelerator, pad_id, out)
    accelerator.end_training()
    return summary


def new_persrm(model, backbone_name: str, config: TrainConfig) -> PersonalizedRewardModel:
    """The PersRM a run trains, before any training: head (identity) + LoRA adapter as `config` says, or those of
    the saved PersRM `config.init`."""
    persrm = PersonalizedRewardModel(model, backbone_name, dropout=config.head_dropout)
    persrm.add_lora(r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                    target_modules=config.lora_targets)
    if config.init:
        load_trained_weights(persrm, config.init)
    return persrm


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _group(data: PairSets, name: str) -> list[PairIds]:
    if name not in data.held_out:
        raise PersonalignError("no held-out pair fits in --max-length: raise it or give shorter --valid pairs")
    return data.held_out[name]


def _maybe(data, name, persrm, config, pad_id, device) -> dict | None:
    return evaluate(persrm, data.held_out[name], config, pad_id, device) if name in data.held_out else None


def _run_stage(stage, steps, state, persrm, data, config, accelerator, log, bar, pad_id, out) -> None:
    from accelerate.utils import gather_object

    params = set_trainable(persrm, stage)
    scorer = SequenceScorer(persrm, train_backbone=stage == 1)
    lr = config.lr_stage1 if stage == 1 else config.lr_stage2
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = min(config.warmup_steps, max(steps - 1, 0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(_linear_schedule, warmup, steps))
    # the schedule is stepped here once per optimizer step, not by accelerate (which steps it once per process)
    wrapped, optimizer = accelerator.prepare(scorer, optimizer)
    start, running = 0, []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["step"]
        # this process's own window; none in a checkpoint older than saved windows, and another number of processes
        # starts afresh (its batches differ anyway)
        windows = state.get("running", [])
        running = windows[accelerator.process_index] if len(windows) == accelerator.num_processes else []
    for step in range(start, steps):
        began = time.perf_counter()
        for micro in range(config.grad_accum):
            batch = [data.train[i] for i in batch_indices(len(data.train), config.batch_size,
                                                          step * config.grad_accum + micro, config.seed, stage,
                                                          accelerator.num_processes, accelerator.process_index)]
            policy, reference = (rows.to(accelerator.device) for rows in pair_rows(batch, pad_id))
            with accelerator.autocast():
                with torch.no_grad():
                    ref = wrapped(reference, reference=True)
                terms = dpo_terms(wrapped(policy), ref, config.beta)
            sync = micro == config.grad_accum - 1
            with accelerator.no_sync(wrapped) if not sync else nullcontext():
                accelerator.backward(terms["loss"].mean() / config.grad_accum)
            running.append([terms[k].mean().item() for k in ("loss", "correct", "margin")])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        bar.update(1)
        bar.set_postfix(stage=stage, loss=f"{running[-1][0]:.3f}")
        done = step + 1
        if done % config.log_every == 0 or done == steps:
            values = accelerator.reduce(torch.tensor(running, device=accelerator.device).mean(0), "mean").tolist()
            log.train(stage, done, values, scheduler.get_last_lr()[0], time.perf_counter() - began)
            running = []
        if done % config.eval_every == 0 or done == steps:
            log.evaluation(stage, done, evaluate(persrm, _group(data, "valid"), config, pad_id, accelerator.device),
                           _maybe(data, "unseen", persrm, config, pad_id, accelerator.device))
        if done % config.save_every == 0 or done == steps:
            windows = gather_object([running])  # every process takes part, though only the first one saves
            if accelerator.is_main_process:
                save_state(out, stage=stage, step=done, persrm=persrm, optimizer=optimizer, scheduler=scheduler,
                           running=windows)
        accelerator.wait_for_everyone()


def _linear_schedule(warmup: int, steps: int, step: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (steps - step) / max(1, steps - warmup))


def _finish(persrm, data, config, accelerator, pad_id, out: Path) -> dict:
    records = read_records(out / METRICS_FILE)
    last = (2, config.stage2_steps) if config.stage2_steps else (1, config.stage1_steps)

    def scores(split: str, position: tuple[int, int]) -> dict | None:
        """The evaluation logged at `position` (the end of training was just evaluated: no need to redo it)."""
        return next((r for r in records if r["split"] == split and (r["stage"], r["step"]) == position), None)

    trained = {split: scores(split, last) for split in ("valid", "unseen")}
    if trained["valid"] is None:  # nothing trained, or a run resumed after its last evaluation
        trained = {"valid": evaluate(persrm, _group(data, "valid"), config, pad_id, accelerator.device),
                   "unseen": _maybe(data, "unseen", persrm, config, pad_id, accelerator.device)}
    summary = {"train_pairs": len(data.train), "dropped_pairs": data.dropped, "reference": config.reference,
               "hold_out": list(config.hold_out), "init": config.init,
               # with --init, "untrained" is the PersRM the run went on from
               "untrained": {split: scores(split, (0, 0)) for split in ("valid", "unseen")}, "trained": trained}
    if accelerator.is_main_process:
        persrm.eval().save_pretrained(out / PERSRM_DIR)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class _MetricsLog:
    def __init__(self, path: Path, active: bool):
        self.path, self.active = path, active

    def train(self, stage: int, step: int, values: list[float], lr: float, seconds: float) -> None:
        self._write([{"split": "train", "stage": stage, "step": step, "loss": values[0], "accuracy": values[1],
                      "margin": values[2], "lr": lr, "seconds_per_step": seconds}])

    def evaluation(self, stage: int, step: int, valid: dict, unseen: dict | None) -> None:
        records = [{"split": "valid", "stage": stage, "step": step, **valid}]
        if unseen is not None:
            records.append({"split": "unseen", "stage": stage, "step": step, **unseen})
        self._write(records)

    def _write(self, records: list[dict]) -> None:
        if self.active:
            append_records(self.path, records)


def _check_out(out: Path, config: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint to resume from (None: a fresh run), once the directory agrees with the request."""
    if not continues_run(out, SETTINGS_FILE, config.outcome_settings(), resume, "training run"):
        return None
    return load_state(out)


def _start_out(out: Path, config: TrainConfig, state: dict | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS_FILE).write_text(json.dumps(config.outcome_settings(), indent=2) + "\n")
    metrics = out / METRICS_FILE
    if state is None:
        metrics.unlink(missing_ok=True)
    else:  # a killed run may have logged past its last checkpoint; those steps are about to be redone
        position = (state["stage"], state["step"])
        write_records_atomic(metrics, [r for r in read_records(metrics) if (r["stage"], r["step"]) <= position])
