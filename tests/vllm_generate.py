"""Run in vLLM's environment (.venv-vllm) by tests/test_vllm_plugin.py: greedy answers from vLLM for token-id
prompts, PAD settings per request. Reads {"model", "requests": [{"prompt_ids", "max_tokens", "extra_args"}],
optionally "tensor_parallel_size"} as JSON on stdin and prints the answers' token ids as one JSON list after MARK (worker processes print too). Under
tensor parallelism each rank is a CPU process of its own, its threads left unbound (one NUMA node here)."""

import json
import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # one process: quicker to start, same code paths

from vllm import LLM, SamplingParams  # noqa: E402

MARK = "answers: "


def main() -> None:
    job = json.load(sys.stdin)
    parallel = job.get("tensor_parallel_size", 1)
    if parallel > 1:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    llm = LLM(job["model"], enforce_eager=True, dtype="float32", max_model_len=1024, kv_cache_memory_bytes=256 * 2**20,
              max_num_seqs=8, seed=0, tensor_parallel_size=parallel)
    prompts = [{"prompt_token_ids": r["prompt_ids"]} for r in job["requests"]]
    params = [SamplingParams(max_tokens=r["max_tokens"], temperature=0.0, extra_args=r.get("extra_args"),
                             ignore_eos=True) for r in job["requests"]]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    print(MARK + json.dumps([list(o.outputs[0].token_ids) for o in outputs]), flush=True)


if __name__ == "__main__":
    main()
