#!/usr/bin/env python3
"""Synthesis, MetaAlign data, the MetaAlign policy and the PersRM in one sitting on a lent GPU, within a wall clock.

    python scripts/train_on_gpu.py --work runs/gpu --budget 540

Each step is a `personalign` command that resumes after a kill. A synthesis that runs out of its share is stopped,
and the prompts whose rollouts are all done are judged (a smaller --limit of the same run). The training steps are
sized from a short probe run's seconds per step (on a lent H200, judging took about as long as decoding: leave
--synth-share room for it). Every step's log goes to WORK/log.txt; `--pack DIR` also writes
each finished step's outputs there as a .tar.gz at once, so a sitting cut short still returns what it finished.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from personalign.records import read_records

PERSONALIGN = [sys.executable, "-c", "import sys; from personalign.cli import main; sys.exit(main())"]
# transformers fetches hub kernels when a model enters training mode on CUDA, which fails on an offline machine
os.environ.setdefault("USE_HUB_KERNELS", "NO")


class Sitting:
    def __init__(self, args):
        self.args, self.work = args, Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + args.budget
        self.log = open(self.work / "log.txt", "a")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, *argv, timeout=None) -> bool:
        """One personalign command; False when it failed or ran out of `timeout` seconds."""
        argv = [str(a) for a in argv]
        self.say(f"$ personalign {' '.join(argv)}  (timeout {timeout and round(timeout)} s)")
        start = time.monotonic()
        try:
            done = subprocess.run(PERSONALIGN + argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  timeout=timeout and max(timeout, 1))
            ok = done.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        self.say(f"  {'ok' if ok else 'STOPPED'} after {time.monotonic() - start:.0f} s, {self.left():.0f} s left")
        return ok

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def pack(self, name: str, *paths) -> None:
        if not self.args.pack:
            return
        with tarfile.open(Path(self.args.pack) / f"{name}.tar.gz", "w:gz") as tar:
            for path in paths:
                if Path(path).exists():
                    tar.add(path, arcname=Path(path).relative_to(self.work))


def complete_prompts(run_dir: Path) -> int:
    """How many leading prompts have all their rollouts (rollouts are written in prompt order, a batch at a time;
    read_records drops the torn last line of a killed run)."""
    config_path = run_dir / "synth_config.json"
    if not config_path.exists():
        return 0
    config = json.loads(config_path.read_text())
    per_prompt = 1 + len(config["dimensions"]) + config["free_per_prompt"]  # the neutral rollout, then the rest
    counts = {}
    for record in read_records(run_dir / "rollouts.jsonl"):
        counts[record["prompt_id"]] = counts.get(record["prompt_id"], 0) + 1
    return sum(n >= per_prompt for n in counts.values())  # a prompt cut mid-batch is not counted


def synthesize(s: Sitting, prompt_set: str, limit: int, seconds: float) -> Path:
    out = s.work / f"synth-{prompt_set}"
    common = ["--prompts", prompt_set, "--free-text", "multifaceted", "--batch-size", s.args.batch_size,
              "--offtopic-pairs", "0.3"]
    if not s.run("data", "synth", "--out", out, "--limit", limit, *common, timeout=seconds):
        done = complete_prompts(out)
        s.say(f"  {prompt_set}: {done} prompts complete; judging those")
        if done < 1 or not s.run("data", "synth", "--out", out, "--limit", done, *common):
            return None
    s.pack(out.name, out)
    return out


def seconds_per_step(metrics: Path, stage) -> float:
    times = [r["seconds_per_step"] for r in read_records(metrics)
             if r.get("stage") == stage and "seconds_per_step" in r]
    return min(times) if times else float("nan")


def steps_for(seconds: float, per_step: float, most: int) -> int:
    """Steps (a multiple of 10, at least 10) that fit `seconds` with 15% to spare."""
    return min(most, max(10, int(seconds / per_step / 1.15) // 10 * 10))


def train_policy(s: Sitting, data: Path, seconds: float) -> None:
    a = s.args
    shape = ["--batch-size", a.train_batch, "--max-length", 256, "--sft-lr", 4e-4, "--dpo-lr", 1e-4]
    probe = s.work / "policy-probe"
    s.run("train-policy", "--data", data, "--out", probe, *shape, "--sft-steps", 10, "--dpo-steps", 10,
          "--log-every", 5, "--save-every", 10, "--sft-eval-every", 10, "--dpo-eval-every", 10, "--eval-limit", 8,
          timeout=min(120, s.left()))
    sft, dpo = seconds_per_step(probe / "metrics.jsonl", "sft"), seconds_per_step(probe / "metrics.jsonl", "dpo")
    if math.isnan(sft) or math.isnan(dpo):
        s.say("  the policy probe gave no step times: no policy trained")
        return
    usable = min(seconds, s.left() - 30) - 60  # loading, tokenizing the pairs, two evaluations, saving
    sft_steps, dpo_steps = steps_for(usable / 2, sft, a.max_steps), steps_for(usable / 2, dpo, a.max_steps)
    s.say(f"  probe: SFT {sft:.3f} s/step, DPO {dpo:.3f} s/step -> {sft_steps} SFT and {dpo_steps} DPO steps")
    out = s.work / "policy"
    s.run("train-policy", "--data", data, "--out", out, *shape, "--sft-steps", sft_steps, "--dpo-steps", dpo_steps,
          "--log-every", 10, "--save-every", 100, "--sft-eval-every", sft_steps, "--dpo-eval-every", dpo_steps,
          "--eval-limit", 400, timeout=s.left() - 10)
    s.pack("policy", out / "policy", out / "metrics.jsonl", out / "policy_config.json", probe / "metrics.jsonl")


def train_persrm(s: Sitting, synth_dirs: list[Path], constraints: Path | None, seconds: float) -> None:
    a = s.args
    train = s.work / "persrm-pairs.jsonl"
    with train.open("w") as f:
        for run in synth_dirs:
            f.write((run / "pairs.jsonl").read_text())
    extra = [run / name for run in synth_dirs for name in ("loop_pairs.jsonl", "offtopic_pairs.jsonl")]
    extra += [constraints / "pairs.jsonl"] if constraints else []
    extra = ",".join(str(p) for p in extra if p.exists() and p.stat().st_size)
    shape = ["--batch-size", a.train_batch, "--lr-stage1", 2e-4, "--lr-stage2", 1e-4, "--mixed-precision",
             a.rm_precision, *(["--train-only", extra] if extra else [])]
    probe = s.work / "persrm-probe"
    s.run("train-rm", "--train", train, "--out", probe, *shape, "--stage1-steps", 10, "--stage2-steps", 1,
          "--eval-every", 10, "--eval-limit", 8, "--save-every", 10, timeout=min(90, s.left()))
    step = seconds_per_step(probe / "metrics.jsonl", 1)
    if math.isnan(step):
        s.say("  the PersRM probe gave no step times: no PersRM trained")
        return
    usable = min(seconds, s.left() - 20) - 45
    stage1 = steps_for(usable * 0.9, step, a.max_steps)
    stage2 = max(1, stage1 // 8)
    s.say(f"  probe: PersRM {step:.3f} s/step -> {stage1} + {stage2} steps")
    out = s.work / "persrm"
    s.run("train-rm", "--train", train, "--out", out, *shape, "--stage1-steps", stage1, "--stage2-steps", stage2,
          "--eval-every", stage1, "--eval-limit", 400, "--save-every", 100, timeout=s.left() - 5)
    s.pack("persrm", out / "persrm", out / "metrics.jsonl", out / "train_config.json", probe / "metrics.jsonl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="directory of every run")
    parser.add_argument("--budget", type=float, default=540, help="wall-clock seconds for the whole sitting")
    parser.add_argument("--pack", help="directory for each finished step's .tar.gz")
    parser.add_argument("--prompt-sets", default="helpsteer:1236,ultrachat_short:1200,truthfulqa:300",
                        help="SET:LIMIT,… synthesized in turn; the first feeds the MetaAlign data")
    parser.add_argument("--synth-share", type=float, default=0.35, help="share of the budget for synthesis")
    parser.add_argument("--policy-share", type=float, default=0.6,
                        help="share of the time left after the data for the policy (the PersRM has the rest)")
    parser.add_argument("--constraints", help="a finished `personalign data constraints` run to use instead of one")
    parser.add_argument("--batch-size", type=int, default=512, help="rollouts decoded together")
    parser.add_argument("--train-batch", type=int, default=64, help="examples or pairs per training step")
    parser.add_argument("--max-steps", type=int, default=5000, help="most steps of each training stage")
    parser.add_argument("--rm-precision", default="bf16", choices=["no", "bf16"])
    args = parser.parse_args()
    s = Sitting(args)
    sets = [(name, int(limit)) for name, limit in (item.split(":") for item in args.prompt_sets.split(","))]
    synth_dirs, total = [], sum(limit for _, limit in sets)
    for name, limit in sets:
        run = synthesize(s, name, limit, args.synth_share * args.budget * limit / total)
        synth_dirs += [run] if run else []
    constraints = Path(args.constraints) if args.constraints else s.work / "constraints"
    if not args.constraints:
        if s.run("data", "constraints", "--out", constraints, "--batch-size", args.batch_size,
                 timeout=0.08 * args.budget):
            s.pack("constraints", constraints)
        else:
            constraints = None
    if synth_dirs:
        data = s.work / "metaalign"
        if s.run("data", "metaalign", "--out", data, "--synth", synth_dirs[0], "--max-per-preference", 1200,
                 *(["--constraints", constraints] if constraints else [])):
            train_policy(s, data, s.left() * args.policy_share)
        train_persrm(s, synth_dirs, constraints, s.left())
    s.pack("log", s.work / "log.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
