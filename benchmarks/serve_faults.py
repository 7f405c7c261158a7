"""Faults against `personalign serve`: every bad request must get a 4xx with an OpenAI-shaped body, no case may
take the scheduler down, and the server must answer correctly afterwards (the same greedy answer as before).

    .venv/bin/python benchmarks/serve_faults.py                    # starts a server on the embedded SmolLM2
    .venv/bin/python benchmarks/serve_faults.py --url http://127.0.0.1:8000

Prints one row per case (expected and actual status) and exits non-zero when any case fails.
"""

import argparse
import json
import socket
import sys
import time
from urllib.parse import urlparse

import httpx

from serve_process import serving

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]


def cases(model: str) -> list[tuple[str, int, object]]:
    """(name, expected status, body: a dict sent as JSON or raw bytes)."""
    base = {"model": model, "messages": HI, "max_tokens": 8}
    return [
        ("malformed JSON", 400, b'{"messages": [}'),
        ("not UTF-8", 400, b'\xff\xfe{"messages": 1}'),
        ("body is a JSON list", 400, b"[1, 2, 3]"),
        ("empty body", 400, b""),
        ("messages is a string", 400, base | {"messages": "Hi"}),
        ("no messages", 400, {"model": model}),
        ("empty messages", 400, base | {"messages": []}),
        ("unknown role", 400, base | {"messages": [{"role": "wizard", "content": "Hi"}]}),
        ("content is a number", 400, base | {"messages": [{"role": "user", "content": 42}]}),
        ("image content", 400, base | {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        ("ends with assistant", 400, base | {"messages": [{"role": "assistant", "content": "Hi"}]}),
        ("temperature is text", 400, base | {"temperature": "warm"}),
        ("temperature NaN", 400, json.dumps(base).replace('"max_tokens"', '"temperature": NaN, "max_tokens"')
         .encode()),
        ("top_p Infinity", 400, json.dumps(base).replace('"max_tokens"', '"top_p": Infinity, "max_tokens"')
         .encode()),
        ("negative temperature", 400, base | {"temperature": -0.5}),
        ("max_tokens negative", 400, base | {"max_tokens": -3}),
        ("max_tokens huge", 400, base | {"max_tokens": 10**9}),
        ("max_tokens is a float", 400, base | {"max_tokens": 7.5}),
        ("max_tokens is true", 400, base | {"max_tokens": True}),
        ("seed negative", 400, base | {"seed": -1}),
        ("seed huge", 400, base | {"seed": 2**70}),
        ("n = 4", 400, base | {"n": 4}),
        ("stream is text", 400, base | {"stream": "yes"}),
        ("stop list too long", 400, base | {"stop": ["a", "b", "c", "d", "e"]}),
        ("stop is a number", 400, base | {"stop": 5}),
        ("logprobs asked", 400, base | {"logprobs": True}),
        ("tools given", 400, base | {"tools": [{"type": "function"}]}),
        ("unknown field", 400, base | {"temprature": 0.2}),
        ("unknown model", 404, base | {"model": "gpt-5"}),
        ("model is a number", 400, base | {"model": 7}),
        ("unknown method", 400, base | {"method": "telepathy"}),
        ("method is a list", 400, base | {"method": ["pad"]}),
        ("unknown preference name", 400, base | {"preference": "concize"}),
        ("preference is an object", 400, base | {"preference": {"a": 1}}),
        ("dims negative weight", 400, base | {"dims": {"concise": -1}}),
        ("dims unknown name", 400, base | {"dims": {"sarcasm": 1}}),
        ("dims and preference", 400, base | {"dims": {"concise": 1}, "preference": "expert"}),
        ("beta negative", 400, base | {"preference": "concise", "beta": -1}),
        ("beta NaN", 400, json.dumps(base | {"preference": "concise"}).replace('"max_tokens"', '"beta": NaN, '
                                                                                '"max_tokens"').encode()),
        ("top_k zero", 400, base | {"preference": "concise", "top_k": 0}),
        ("top_k beyond the vocabulary", 400, base | {"preference": "concise", "top_k": 10**7}),
        ("pad without a preference", 400, base | {"method": "pad"}),
        ("system_info on pad", 400, base | {"preference": "concise", "system_info": "Be brief."}),
        ("reward form unknown", 400, base | {"preference": "concise", "reward": "magic"}),
        ("10k-token prompt", 400, base | {"messages": [{"role": "user", "content": "token " * 10_000}]}),
        ("2 MB body", 413, base | {"messages": [{"role": "user", "content": "x" * 2_000_000}]}),
        ("completions: prompt list of two", 400, {"model": model, "prompt": ["a", "b"], "max_tokens": 4}),
        ("completions: token ids", 400, {"model": model, "prompt": [1, 2, 3], "max_tokens": 4}),
    ]


def check(response: httpx.Response, expected: int) -> str:
    """'' when the answer is right, else what is wrong."""
    if response.status_code != expected:
        return f"status {response.status_code}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return "body is not {'error': ...}"
    if set(error) != {"message", "type", "param", "code"} or not isinstance(error["message"], str):
        return f"error fields {sorted(error)}"
    return ""


def disconnect_mid_stream(url: str, model: str) -> str:
    """Start a long streaming answer, read a little, hang up; the server must free the request."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": 200, "temperature": 0, "stream": True}
    with httpx.stream("POST", url + CHAT, json=body, timeout=120) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _gauge(url, "personalign_num_requests_running") == 0:
            return ""
        time.sleep(0.2)
    return "still running 30 s after the client left"


def half_request(url: str) -> str:
    """Send headers promising a body, then close: the server must not hang or fall over."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 5000\r\n\r\n{\"messages\":".encode())
    return ""


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def reference_answer(url: str, model: str) -> str:
    body = {"model": model, "messages": HI, "max_tokens": 12, "temperature": 0,
            "preference": "concise"}
    response = httpx.post(url + CHAT, json=body, timeout=120)
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running server (default: start one on the embedded model)")
    args = parser.parse_args()
    with serving([], args.url) as (url, child):
        model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        before = reference_answer(url, model)
        failures, rows = 0, []
        for name, expected, body in cases(model):
            path = "/v1/completions" if name.startswith("completions") else CHAT
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = httpx.post(url + path, content=content, headers={"content-type": "application/json"},
                                  timeout=120)
            problem = check(response, expected)
            rows.append((name, str(expected), str(response.status_code), problem or "ok"))
        for name, probe in (("disconnect mid-stream", lambda: disconnect_mid_stream(url, model)),
                            ("half-sent request, then hang up", lambda: half_request(url))):
            problem = probe()
            rows.append((name, "-", "-", problem or "ok"))
        healthy = httpx.get(url + "/health", timeout=10).status_code == 200
        after = reference_answer(url, model)
        alive = child is None or child.poll() is None
    print("| case | expected | got | result |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
        failures += row[3] != "ok"
    print(f"\n{len(rows) - failures}/{len(rows)} cases right; server process alive: {alive}; /health ok: {healthy}; "
          f"same greedy answer before and after: {before == after}")
    return 0 if failures == 0 and alive and healthy and before == after else 1


if __name__ == "__main__":
    sys.exit(main())
