"""Tokens per second of personalign's transformers engine and of vLLM with the PAD plugin, side by side in one run.

    .venv/bin/python benchmarks/vllm_vs_engine.py [--batches 1,8,32] [--tokens 32] [--compile]

The embedded SmolLM2 and its shipped LoRA PersRM (in vLLM a second decoder stack); koala_eval_50 prompts; plain
greedy decoding (the base reading the bare prompt) and PAD's released rule (concise, beta 1, top-k 10; the prompt
in PAD's template), every answer `--tokens` long (end-of-sequence ignored), each batch in one call. vLLM runs in
its own environment (scripts/setup-vllm.sh), eager unless --compile (torch.compile: minutes to start). Both in
fp32 on the CPU; the two run one after the other in the same invocation, so they see the same machine load.
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

from personalign import GenerationRequest, load_engine
from personalign.api import default_persrm
from personalign.commands.serve import pad_model_dir
from personalign.data.prompt_sets import load_prompts
from personalign.models import resolve_model_source

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"plain": dict(method="base"), "pad": dict(preference="concise", method="pad", beta=1.0, top_k=10)}


def engine_speeds(engine, prompts: list[str], batches: list[int], tokens: int) -> tuple[dict, dict]:
    """{(method, batch): tokens/s} and the prompt ids each request read (for vLLM to read the same)."""
    speeds, prompt_ids = {}, {}
    engine.generate([GenerationRequest(prompts[0], max_new_tokens=4, method="base")])  # warm-up
    for name, settings in METHODS.items():
        for batch in batches:
            requests = [GenerationRequest(p, max_new_tokens=tokens, ignore_eos=True, **settings)
                        for p in prompts[:batch]]
            started = time.perf_counter()
            results = engine.generate(requests)
            speeds[(name, batch)] = sum(len(r.token_ids) for r in results) / (time.perf_counter() - started)
            prompt_ids[name] = [r.prompt_token_ids for r in results]  # the largest batch's, a superset
    return speeds, prompt_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="let vLLM compile its model (slow to start)")
    parser.add_argument("--vllm-python", type=Path, default=ROOT / ".venv-vllm" / "bin" / "python")
    args = parser.parse_args()
    batches = sorted(int(b) for b in args.batches.split(","))
    prompts = [p.prompt for p in load_prompts("koala_eval_50", max(batches))]

    engine = load_engine(dtype="fp32", device="cpu", max_running=max(batches))
    ours, prompt_ids = engine_speeds(engine, prompts, batches, args.tokens)
    del engine
    base = resolve_model_source(None)
    runs = [{"name": f"{name}/{batch}", "prompts": prompt_ids[name][:batch], "max_tokens": args.tokens,
             "extra_args": {"pad_beta": 1.0, "pad_top_k": 10} if name == "pad" else None}
            for name in METHODS for batch in batches]
    job = json.dumps({"model": str(pad_model_dir(base, default_persrm(base))), "eager": not args.compile,
                      "runs": runs})
    done = subprocess.run([str(args.vllm_python), str(ROOT / "benchmarks" / "vllm_timing.py")], input=job,
                          text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"vLLM failed:\n{done.stderr[-3000:]}")
    theirs = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"\n{args.tokens} new tokens per answer, tokens/s (higher is faster); vLLM "
          f"{'compiled' if args.compile else 'eager'}")
    print(f"{'method':<7} {'batch':>5} {'engine':>8} {'vLLM':>8} {'vLLM/engine':>11}")
    for name in METHODS:
        for batch in batches:
            mine, vllm = ours[(name, batch)], theirs[f"{name}/{batch}"]
            print(f"{name:<7} {batch:>5} {mine:>8.1f} {vllm:>8.1f} {vllm / mine:>11.2f}")


if __name__ == "__main__":
    main()
