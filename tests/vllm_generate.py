"""Run in vLLM's environment (.venv-vllm) by tests/test_vllm_plugin.py: greedy answers from vLLM for token-id
prompts, PAD settings per request. Reads {"model", "requests": [{"prompt_ids", "max_tokens", "extra_args"}]} as
JSON on stdin and prints the answers' token ids as one JSON list."""

import json
import os
import sys

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # one process: quicker to start, same code paths

from vllm import LLM, SamplingParams  # noqa: E402


def main() -> None:
    job = json.load(sys.stdin)
    llm = LLM(job["model"], enforce_eager=True, dtype="float32", max_model_len=1024, kv_cache_memory_bytes=256 * 2**20,
              max_num_seqs=8, seed=0)
    prompts = [{"prompt_token_ids": r["prompt_ids"]} for r in job["requests"]]
    params = [SamplingParams(max_tokens=r["max_tokens"], temperature=0.0, extra_args=r.get("extra_args"),
                             ignore_eos=True) for r in job["requests"]]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    print(json.dumps([list(o.outputs[0].token_ids) for o in outputs]))


if __name__ == "__main__":
    main()
