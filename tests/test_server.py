"""`personalign serve`: the real server on loopback, driven by the official openai client (and raw HTTP where a
client would hide what is checked): answers equal the engine's alone, streaming, extension fields, continuous
batching across users, cancel on disconnect, 429, timeouts, auth on every route, OpenAI-shaped errors."""

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from live_server import MODEL, live_server
from personalign.cli import main
from personalign.decoding.engine import Engine
from personalign.decoding.request import GenerationRequest

ROUTES = [("GET", "/v1/models"), ("GET", "/version"), ("GET", "/metrics"), ("POST", "/v1/chat/completions"),
          ("POST", "/v1/completions")]
CHAT = "/v1/chat/completions"


def new_engine(models, **limits) -> Engine:
    """An engine over the module's models (engines keep no state in the models, so several can share them)."""
    base, tokenizer, persrm = models
    return Engine(base, tokenizer, persrm, **limits)


@pytest.fixture(scope="module")
def server(models):
    with live_server(new_engine(models, max_running=8, max_prompt_tokens=300), max_tokens=64) as running:
        yield running


def client(url, key="none") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def alone(models, prompt, **fields):
    """The answer `personalign generate` would give: the request alone through a fresh engine."""
    return new_engine(models).generate([GenerationRequest(prompt, **fields)])[0]


def chat(url, content, **body):
    return client(url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}],
                                               temperature=0, **body)


def metric(url, name) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


def assert_openai_error(response, status, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "\n" not in error["message"]
    if param is not None:
        assert error["param"] == param, error


def test_plain_chat_is_the_base_model_alone(server, models):
    url, _ = server
    answer = chat(url, "Explain how rain forms.", max_tokens=12)
    expected = alone(models, "Explain how rain forms.", method="base", max_new_tokens=12)
    assert answer.choices[0].message.content == expected.text
    assert answer.usage.completion_tokens == len(expected.token_ids)
    assert answer.usage.prompt_tokens == len(expected.prompt_token_ids)
    assert answer.choices[0].finish_reason == {"length": "length"}.get(expected.finish_reason, "stop")
    assert answer.model == MODEL and answer.id.startswith("chatcmpl-")


def test_extension_fields_personalize_exactly_as_the_engine(server, models):
    url, _ = server
    answer = chat(url, "Give me a tip for learning to cook", max_tokens=10,
                  extra_body={"preference": "concise", "beta": 2.0, "top_k": 5})
    expected = alone(models, "Give me a tip for learning to cook", preference="concise", method="pad", beta=2.0,
                     top_k=5, max_new_tokens=10)
    assert answer.choices[0].message.content == expected.text
    assert answer.model_extra["personalign"] == {"method": "pad", "preference": "concise", "beta": 2.0}
    mixed = chat(url, "Plan my week", max_tokens=8, extra_body={"dims": {"concise": 0.7, "friendly": 0.3},
                                                                "method": "prompt"})
    assert mixed.choices[0].message.content == alone(models, "Plan my week", preference="concise=0.7,friendly=0.3",
                                                     method="prompt", max_new_tokens=8).text
    plain = chat(url, "Give me a tip for learning to cook", max_tokens=10)
    assert plain.choices[0].message.content != answer.choices[0].message.content  # the preference did something


def test_streaming_matches_the_whole_answer_and_reports_usage(server, models):
    url, _ = server
    stream = client(url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Explain how rain forms."}], temperature=0, max_tokens=12,
        stream=True, stream_options={"include_usage": True}, extra_body={"preference": "expert"})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = alone(models, "Explain how rain forms.", preference="expert", max_new_tokens=12)
    assert text == expected.text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    completion = "".join(c.choices[0].text for c in client(url).completions.create(
        model=MODEL, prompt="Explain how rain forms.", temperature=0, max_tokens=12, stream=True,
        extra_body={"preference": "expert"}))
    assert completion == expected.text


def test_concurrent_users_are_batched_and_each_equals_its_answer_alone(server, models):
    url, scheduler = server
    asks = [("Explain how rain forms.", {"preference": "concise"}, 10),
            ("Give me a tip for learning to cook", {"preference": "I'm a nurse, skip the basics", "beta": 2.5}, 14),
            ("Hi", {}, 6), ("Plan my week", {"dims": {"friendly": 0.5, "expert": 0.5}, "beta": 0.8}, 9),
            ("Explain how rain forms.", {"preference": "humor", "method": "prompt"}, 11),
            ("What is DNS?", {"preference": "expert", "method": "fusion"}, 7)]
    widest = []
    stop = threading.Event()

    def watch():  # the batch really holds several users at once
        while not stop.is_set():
            widest.append(scheduler.engine.running)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda a: chat(url, a[0], max_tokens=a[2], extra_body=a[1]), asks))
    stop.set()
    watcher.join()
    for (prompt, extra, tokens), answer in zip(asks, answers):
        pref = extra.get("preference") or ",".join(f"{k}={v}" for k, v in extra.get("dims", {}).items()) or None
        method = extra.get("method", "pad" if pref else "base")
        expected = alone(models, prompt, preference=pref, method=method, beta=extra.get("beta", 1.0),
                         max_new_tokens=tokens)
        assert answer.choices[0].message.content == expected.text, (prompt, extra)
    assert max(widest) > 1


def test_a_client_that_goes_away_frees_its_place(server, models):
    url, scheduler = server
    long_answer = alone(models, "Tell me a long story", method="base", max_new_tokens=60)
    assert len(long_answer.token_ids) == 60  # the premise: it would run to the limit
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story"}], "max_tokens": 60,
            "temperature": 0, "stream": True}
    before = metric(url, "personalign_requests_cancelled_total")
    slow = SlowSteps(scheduler.engine, 0.05)
    with slow:
        with httpx.stream("POST", url + CHAT, json=body, timeout=30) as response:
            next(response.iter_lines())  # the first chunk, then hang up
    deadline = time.monotonic() + 10
    while metric(url, "personalign_requests_cancelled_total") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(url, "personalign_requests_cancelled_total") == before + 1
    assert slow.steps < 50 and not scheduler.engine.busy
    assert chat(url, "Hi", max_tokens=3).choices[0].message.content == alone(models, "Hi", method="base",
                                                                              max_new_tokens=3).text


class SlowSteps:
    """Fault injection: while active, each engine step first sleeps (or waits for `gate`), and is counted."""

    def __init__(self, engine, delay=0.0, gate: threading.Event | None = None, fail_once=False):
        self.engine, self.delay, self.gate, self.fail_once, self.steps = engine, delay, gate, fail_once, 0
        self.real_step = engine.step

    def step(self):
        self.steps += 1
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.delay)
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("injected fault")
        return self.real_step()

    def __enter__(self):
        self.engine.step = self.step
        return self

    def __exit__(self, *exc):
        del self.engine.step


def test_a_full_queue_answers_429_with_retry_after(models):
    gate = threading.Event()
    engine = new_engine(models, max_running=1)
    with live_server(engine, max_waiting=1) as (url, _), SlowSteps(engine, gate=gate):
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(chat, url, "Hi", max_tokens=4)
            deadline = time.monotonic() + 10
            while not engine.busy and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = httpx.post(url + CHAT, json={"messages": [{"role": "user", "content": "Hi"}]})
            gate.set()
            assert first.result().choices[0].message.content == alone(models, "Hi", method="base",
                                                                       max_new_tokens=4).text
        assert_openai_error(refused, 429)
        assert refused.headers["retry-after"] == "1"
        with pytest.raises(openai.RateLimitError):  # how the official client sees it
            gate.clear()
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(chat, url, "Hi", max_tokens=2)
                while not engine.busy:
                    time.sleep(0.01)
                try:
                    chat(url, "Hi", max_tokens=2)
                finally:
                    gate.set()
                    held.result()
        assert chat(url, "Hi", max_tokens=2).choices  # and it serves again


def test_timeouts_and_failing_steps_end_those_requests_only(models):
    engine = new_engine(models)
    with live_server(engine, timeout=0.3) as (url, scheduler):
        with SlowSteps(engine, delay=0.1):
            late = httpx.post(url + CHAT, json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50})
        assert_openai_error(late, 408)
        with SlowSteps(engine, fail_once=True):
            failed = httpx.post(url + CHAT, json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
        assert_openai_error(failed, 500)
        assert "injected fault" in failed.json()["error"]["message"]
        assert scheduler.alive and httpx.get(url + "/health").json() == {"status": "ok"}
        assert chat(url, "Hi", max_tokens=3).choices[0].message.content == alone(models, "Hi", method="base",
                                                                                  max_new_tokens=3).text


def test_every_route_but_health_needs_the_key(models, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("first-key\n\nsecond-key\n")
    with live_server(new_engine(models), api_key_file=str(keys)) as (url, _):
        assert httpx.get(url + "/health").status_code == 200
        for verb, route in ROUTES:
            body = {"messages": [{"role": "user", "content": "Hi"}], "prompt": "Hi", "max_tokens": 2}
            body = {k: v for k, v in body.items() if route != CHAT or k != "prompt"}
            body = {k: v for k, v in body.items() if route != "/v1/completions" or k != "messages"}
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic second-key"}):
                response = httpx.request(verb, url + route, headers=headers, json=body if verb == "POST" else None)
                assert_openai_error(response, 401)
            ok = httpx.request(verb, url + route, headers={"Authorization": "Bearer second-key"},
                               json=body if verb == "POST" else None)
            assert ok.status_code == 200, (route, ok.text)
        with pytest.raises(openai.AuthenticationError):
            chat(url, "Hi", max_tokens=2)
        assert client(url, "first-key").models.list().data[0].id == MODEL


@pytest.mark.parametrize("body, status, param", [
    ("{not json", 400, None),
    ([1, 2], 400, None),
    ({"messages": "hi"}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, 400, "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ({"temperature": "hot"}, 400, "temperature"),
    ({"temperature": -1}, 400, "temperature"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"max_tokens": 10_000}, 400, "max_tokens"),
    ({"max_completion_tokens": 2.5}, 400, "max_completion_tokens"),
    ({"n": 3}, 400, "n"),
    ({"stream": "yes"}, 400, "stream"),
    ({"stream_options": {"include_usage": True}}, 400, "stream_options"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"frobnicate": 1}, 400, "frobnicate"),
    ({"model": "gpt-4o"}, 404, "model"),
    ({"method": "nope"}, 400, "method"),
    ({"method": "pad"}, 400, "preference"),  # pad needs one
    ({"preference": "concize"}, 400, "preference"),
    ({"preference": 3}, 400, "preference"),
    ({"dims": {"concise": -1}}, 400, "dims"),
    ({"dims": "concise", "preference": "expert"}, 400, "dims"),
    ({"beta": -2, "preference": "concise"}, 400, "beta"),
    ({"top_k": 0, "preference": "concise"}, 400, "top_k"),
    ({"end_of_turn": "never", "preference": "concise"}, 400, "end_of_turn"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"seed": -5, "temperature": 0.5}, 400, "seed"),
    ({"system_info": "Be brief.", "preference": "concise"}, 400, "system_info"),  # pad reads no System Info
    ({"messages": [{"role": "user", "content": "word " * 400}]}, 400, None),  # over max_prompt_tokens
    ({"method": "metaalign", "preference": "concise"}, 400, None),  # no policy on this server
])
def test_bad_requests_get_openai_shaped_4xx(server, body, status, param):
    url, scheduler = server
    if isinstance(body, dict):
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4} | body)
    elif not isinstance(body, str):
        body = json.dumps(body)
    response = httpx.post(url + CHAT, content=body, headers={"content-type": "application/json"})
    assert_openai_error(response, status, param)
    assert scheduler.alive and not scheduler.engine.busy


def test_limits_on_bodies_and_routes(server):
    url, _ = server
    huge = json.dumps({"messages": [{"role": "user", "content": "x" * 1_100_000}]})
    assert_openai_error(httpx.post(url + CHAT, content=huge, headers={"content-type": "application/json"}), 413)
    assert_openai_error(httpx.get(url + "/v1/nothing"), 404)
    assert_openai_error(httpx.get(url + CHAT), 405)
    assert httpx.get(url + "/version").json() == {"version": "test"}
    assert "personalign_time_to_first_token_seconds_bucket" in httpx.get(url + "/metrics").text


def test_serve_refuses_to_listen_beyond_loopback_without_a_key(capsys, tmp_path):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--api-key" in err
    assert main(["serve", "--api-key-file", str(tmp_path / "missing.txt")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["serve", "--max-running", "0"]) == 2


def test_engine_admission_limits_and_events_of_others(models):
    engine = new_engine(models, max_running=2, max_prefill_tokens=1)
    requests = [GenerationRequest(p, method="base", max_new_tokens=5) for p in ("Hi", "What is DNS?", "Plan my week")]
    expected = [alone(models, r.prompt, method="base", max_new_tokens=5).token_ids for r in requests]
    ids = [engine.submit(copy.deepcopy(r)) for r in requests]
    running = []
    tokens = {i: [] for i in ids}
    while engine.busy:
        for event in engine.step():
            tokens[event.request_id].append(event.token_id)
        running.append(engine.running)
    assert [tokens[i] for i in ids] == expected
    assert running[0] == 1 and max(running) == 2  # one prefill per step (budget), never more than two decoding
    # generate() steps past a request submitted beside it; that request's events wait for claim()
    beside = engine.submit(copy.deepcopy(requests[0]))
    engine.generate([copy.deepcopy(requests[1])])
    claimed = engine.claim(beside)
    assert [e.token_id for e in claimed] == expected[0] and claimed[-1].result is not None
    assert engine.claim(beside) == [] and not engine.busy


def test_serve_builds_its_app_from_the_model_flags(tiny_model_dir):
    from argparse import Namespace
    from pathlib import Path

    from starlette.testclient import TestClient

    from personalign.commands.serve import build
    from personalign.serving.config import ServerConfig

    args = Namespace(base=tiny_model_dir, persrm="untrained", policy=None, device=None, dtype=None)
    app, scheduler, name = build(ServerConfig(max_running=3, max_prompt_tokens=100), args)
    try:
        assert name == Path(tiny_model_dir).name
        assert (scheduler.engine.max_running, scheduler.engine.max_prompt_tokens) == (3, 100)
        with TestClient(app) as http:
            assert http.get("/v1/models").json()["data"][0]["id"] == name
            answer = http.post(CHAT, json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                           "preference": "concise", "temperature": 0}).json()
            assert answer["usage"]["completion_tokens"] <= 3 and answer["personalign"]["method"] == "pad"
    finally:
        scheduler.stop()
