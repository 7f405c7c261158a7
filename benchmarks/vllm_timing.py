"""Run in vLLM's environment by benchmarks/vllm_vs_engine.py: tokens per second of vLLM on token-id prompts.

Reads {"model", "eager", "runs": [{"name", "prompts": [[ids]], "max_tokens", "extra_args"}]} as JSON on stdin and
prints {name: tokens per second} as one JSON line (after one untimed warm-up batch)."""

import json
import os
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

from vllm import LLM, SamplingParams  # noqa: E402


def main() -> None:
    job = json.load(sys.stdin)
    llm = LLM(job["model"], enforce_eager=job["eager"], dtype="float32", max_model_len=1024,
              kv_cache_memory_bytes=1024 * 2**20, max_num_seqs=64, seed=0)
    speeds = {}
    for run in [job["runs"][0]] + job["runs"]:  # the first again, untimed: warm-up
        params = SamplingParams(max_tokens=run["max_tokens"], temperature=0.0, ignore_eos=True,
                                extra_args=run["extra_args"])
        started = time.perf_counter()
        outputs = llm.generate([{"prompt_token_ids": p} for p in run["prompts"]], params, use_tqdm=False)
        seconds = time.perf_counter() - started
        speeds[run["name"]] = sum(len(o.outputs[0].token_ids) for o in outputs) / seconds
    print(json.dumps(speeds))


if __name__ == "__main__":
    main()
