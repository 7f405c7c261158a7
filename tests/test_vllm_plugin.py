"""PAD on vLLM (src/personalign/vllm_plugin) against the transformers engine, token for token, on SmolLM2: the
shipped LoRA PersRM (a second stack in the vLLM model) and a head-only PersRM (one backbone pass), requests with
different beta and top-k and a plain one in the same batch. vLLM runs in its own environment
(scripts/setup-vllm.sh); these tests skip where it is not built."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import require_embedded_model
from personalign import GenerationRequest, load_engine
from personalign.api import DEFAULT_PERSRM
from personalign.models import embedded_model_dir, load_causal_lm
from personalign.reward_model import PersonalizedRewardModel, load_saved
from personalign.vllm_plugin.export import export_pad_model

ROOT = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("PERSONALIGN_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
pytestmark = pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"no vLLM environment at {VLLM_PYTHON}: run "
                                                                 f"`bash scripts/setup-vllm.sh`")

PROMPTS = ["Explain how rain forms.", "Give me a tip for learning to cook"]
SETTINGS = [(0.5, 10), (2.0, 10), (8.0, 5)]  # (beta, top_k), one per request, mixed in one batch
TOKENS = 24


def vllm_answers(model_dir: Path, requests: list[dict], tensor_parallel_size: int = 1) -> list[list[int]]:
    job = json.dumps({"model": str(model_dir), "requests": requests, "tensor_parallel_size": tensor_parallel_size})
    done = subprocess.run([str(VLLM_PYTHON), str(ROOT / "tests" / "vllm_generate.py")], input=job, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    mark = "answers: "  # vllm_generate.MARK (that module imports vLLM, absent from this environment)
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith(mark)).removeprefix(mark))


def engine_and_vllm(persrm: str, tmp_path, tensor_parallel_size: int = 1) -> tuple[list[list[int]], list[list[int]]]:
    engine = load_engine(persrm=persrm, dtype="fp32", device="cpu")
    requests = [GenerationRequest(p, "concise", method="pad", beta=beta, top_k=k, reward="released",
                                  max_new_tokens=TOKENS, ignore_eos=True) for p in PROMPTS for beta, k in SETTINGS]
    requests.append(GenerationRequest(PROMPTS[0], method="base", max_new_tokens=TOKENS, ignore_eos=True))
    results = engine.generate(requests)
    # the end of turn left to the base (the requests' default) is told to vLLM as the server's backend tells it
    end = {"pad_end_ids": sorted(engine.eos_ids)}
    jobs = [{"prompt_ids": r.prompt_token_ids, "max_tokens": TOKENS,
             "extra_args": {"pad_beta": q.beta, "pad_top_k": q.top_k,
                            **(end if q.end_of_turn == "base" else {})} if q.method == "pad" else None}
            for q, r in zip(requests, results)]
    model_dir = export_pad_model(tmp_path / "pad-model", persrm=persrm)
    return [r.token_ids for r in results], vllm_answers(model_dir, jobs, tensor_parallel_size)


def test_the_shipped_lora_persrm_runs_as_a_second_stack_and_equals_the_engine(tmp_path):
    require_embedded_model()
    expected, got = engine_and_vllm(str(DEFAULT_PERSRM), tmp_path)
    assert json.loads((tmp_path / "pad-model" / "config.json").read_text())["personalign_pad"]["own_backbone"]
    assert got == expected
    assert len({tuple(ids) for ids in expected}) > len(PROMPTS) + 1  # beta and k change the answers


def test_under_tensor_parallelism_the_persrms_stack_is_sharded_like_the_base_and_equals_the_engine(tmp_path):
    """Three CPU processes (SmolLM2's 9 heads and 3 KV heads split in three), each holding a third of both stacks."""
    require_embedded_model()
    expected, got = engine_and_vllm(str(DEFAULT_PERSRM), tmp_path, tensor_parallel_size=3)
    assert got == expected


def test_a_head_only_persrm_runs_on_the_base_pass_and_equals_the_engine(tmp_path):
    require_embedded_model()
    base, _ = load_causal_lm(dtype="fp32", device="cpu")
    shipped = load_saved(str(DEFAULT_PERSRM), base)
    head_only = PersonalizedRewardModel(shipped.causal_lm, str(embedded_model_dir()), head=shipped.head)
    head_only.save_pretrained(tmp_path / "head-only")
    expected, got = engine_and_vllm(str(tmp_path / "head-only"), tmp_path)
    assert not json.loads((tmp_path / "pad-model" / "config.json").read_text())["personalign_pad"]["own_backbone"]
    assert got == expected
    assert len({tuple(ids) for ids in expected}) > len(PROMPTS) + 1


def test_vllm_refuses_pad_settings_it_cannot_run():
    for extra, says in [({"pad_beta": -1}, "pad_beta must be a number >= 0"),
                        ({"pad_beta": 1, "pad_top_k": 0}, "pad_top_k must be an integer >= 1"),
                        ({"pad_beta": 1, "pad_reward_form": "decoupled"}, "cannot run on vLLM"),
                        ({"pad_beta": 1, "pad_end_ids": "2"}, "pad_end_ids must be a list of token ids")]:
        check = ("import sys; from vllm import SamplingParams; from personalign.vllm_plugin.processor import "
                 f"pad_params\ntry: pad_params(SamplingParams(extra_args={extra!r}))\n"
                 "except ValueError as e: print(e)")
        out = subprocess.run([str(VLLM_PYTHON), "-c", check], text=True, capture_output=True, timeout=120)
        assert says in out.stdout, out.stderr[-2000:]


def test_serve_with_the_vllm_backend_answers_as_the_engine_and_refuses_what_it_cannot_run(tmp_path, monkeypatch):
    from argparse import Namespace

    from starlette.testclient import TestClient

    from personalign.commands.serve import build
    from personalign.serving.config import ServerConfig

    require_embedded_model()
    converted = embedded_model_dir().parent
    monkeypatch.setenv("PERSONALIGN_HOME", str(tmp_path))  # the exported PAD model goes here
    (tmp_path / "models").symlink_to(converted)  # the converted SmolLM2, not converted again
    messages = [{"role": "user", "content": PROMPTS[0]}]
    short = [{"role": "user", "content": "What is the capital of France?"}]  # the base would stop after one line
    expected, base_ends = load_engine(dtype="fp32", device="cpu").generate(
        [GenerationRequest(messages, "concise", method="pad", beta=2.0, max_new_tokens=TOKENS),
         GenerationRequest(short, "concise", method="pad", beta=1.0, max_new_tokens=TOKENS, end_of_turn="base")])
    expected = expected.text
    assert base_ends.finish_reason == "eos"  # else the end-of-turn rule below is not exercised
    config = ServerConfig(backend="vllm", vllm_python=str(VLLM_PYTHON), max_running=4,
                          vllm_args="--enforce-eager --dtype float32 --kv-cache-memory-bytes 268435456 "
                                    "--max-model-len 512")
    app, scheduler, _ = build(config, Namespace(base=None, persrm=None, policy=None, device=None, dtype=None))
    child = scheduler.engine.on_close.__self__.process
    try:
        with TestClient(app) as http:
            ask = {"messages": messages, "max_tokens": TOKENS, "temperature": 0, "preference": "concise", "beta": 2.0}
            answer = http.post("/v1/chat/completions", json=ask)
            assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == expected
            with http.stream("POST", "/v1/chat/completions", json=ask | {"stream": True}) as streamed:
                chunks = [json.loads(line[6:]) for line in streamed.iter_lines()
                          if line.startswith("data: {")]
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == expected
            answer = http.post("/v1/chat/completions",
                               json=ask | {"messages": short, "beta": 1.0, "end_of_turn": "base"}).json()
            assert answer["choices"][0]["message"]["content"] == base_ends.text
            assert answer["choices"][0]["finish_reason"] == "stop"
            for refused, says in [({"method": "fusion"}, "does not run on the vLLM backend"),
                                  ({"preference": None, "dims": "concise=0.5,friendly=0.5"}, "weighted mix"),
                                  ({"max_tokens": 500}, "context"), ({"top_k": 21}, "exported with")]:
                reply = http.post("/v1/chat/completions", json={k: v for k, v in (ask | refused).items()
                                                                 if v is not None})
                assert reply.status_code == 400 and says in reply.json()["error"]["message"], reply.text
    finally:
        scheduler.stop()
    assert child.poll() is not None  # the vLLM child stopped with the server
