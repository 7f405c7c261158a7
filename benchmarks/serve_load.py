"""Load on `personalign serve`: N concurrent streaming users with the official openai client, mixed preferences
and methods, for T seconds per row; then greedy answers given under load are asked again alone and compared.

    .venv/bin/python benchmarks/serve_load.py                      # starts a server on the embedded SmolLM2
    .venv/bin/python benchmarks/serve_load.py --concurrency 1,8,32 --seconds 60 --url http://127.0.0.1:8000

Each user sends one streaming request after another (all greedy, 32-64 new tokens, one of a dozen personalization
mixes); requests started within T seconds are counted once they end. Time to first token is from sending the
request to its first text; inter-token latency is the gap between consecutive text chunks (one token each).
Aggregate tokens/s is completion tokens over the wall time until the row's last request ended.
"""

import argparse
import itertools
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai

from serve_process import serving

PROMPTS = ["How do vaccines work?", "Give me a tip for learning to cook.", "What is DNS?", "Plan a weekend in Rome.",
           "Why is the sky blue?", "How should I start running?", "Explain compound interest.",
           "What makes a good cover letter?"]
# (extension fields, max_tokens): what different users of one app would send
MIXES = [({}, 48), ({"preference": "concise"}, 32), ({"preference": "friendly", "beta": 1.5}, 48),
         ({"preference": "expert", "method": "prompt"}, 64), ({"dims": {"concise": 0.7, "friendly": 0.3}}, 40),
         ({"preference": "I'm eight years old", "beta": 0.8}, 48), ({"preference": "elementary", "top_k": 5}, 56),
         ({"preference": "humor", "method": "prompt"}, 40), ({"preference": "unfriendly", "beta": 2.0}, 32),
         ({"preference": "informative"}, 64), ({"preference": "keep it formal", "method": "prompt"}, 48),
         ({"preference": "expert", "beta": 1.0}, 48)]
JOBS = [(PROMPTS[j % len(PROMPTS)], *MIXES[j % len(MIXES)]) for j in range(24)]  # 24 distinct requests


def ask(client, model, prompt, extra, max_tokens) -> dict:
    """One streaming request: its text, completion tokens, time to first token and gaps between chunks."""
    sent = time.monotonic()
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, extra_body=extra)
    text, times, tokens = [], [], 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.monotonic())
            text.append(chunk.choices[0].delta.content)
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return {"text": "".join(text), "tokens": tokens, "ttft": times[0] - sent if times else None,
            "gaps": [b - a for a, b in zip(times, times[1:])], "request": (prompt, extra, max_tokens)}


def user(url, model, seconds, start, index, results, errors, lock):
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    for count in itertools.count():
        if time.monotonic() - start >= seconds:
            break
        prompt, extra, max_tokens = JOBS[(index + count) % len(JOBS)]  # users start at different requests
        try:
            answer = ask(client, model, prompt, extra, max_tokens)
            with lock:
                results.append(answer)
        except Exception as error:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                errors.append(f"{type(error).__name__}: {error}")


def run_row(url, model, users, seconds) -> dict:
    results, errors, lock = [], [], threading.Lock()
    start = time.monotonic()
    threads = [threading.Thread(target=user, args=(url, model, seconds, start, i, results, errors, lock))
               for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    ttft = sorted(r["ttft"] for r in results if r["ttft"] is not None)
    gaps = sorted(g for r in results for g in r["gaps"])
    return {"users": users, "requests": len(results), "errors": errors, "wall": wall,
            "tokens_per_s": sum(r["tokens"] for r in results) / wall, "ttft": ttft, "gaps": gaps,
            "results": results}


def quantile(values, q):
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else \
        (values[0] if values else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,8,32", help="users per row, comma-separated (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds each row sends requests (default 60)")
    parser.add_argument("--replay", type=int, default=16, help="answers of the last row asked again alone")
    parser.add_argument("--url", default=None, help="a running server (default: start one on the embedded model)")
    parser.add_argument("--server-args", default="", help="extra `personalign serve` flags for the started server")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    with serving(args.server_args.split(), args.url) as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
        model = client.models.list().data[0].id
        rows = []
        for users in levels:
            print(f"[{users} users, {args.seconds:g} s]", file=sys.stderr, flush=True)
            rows.append(run_row(url, model, users, args.seconds))
        last = rows[-1]["results"][:args.replay]
        with ThreadPoolExecutor(1) as pool:  # one at a time: each request alone in the batch
            again = list(pool.map(lambda r: ask(client, model, *r["request"]), last))
    single = rows[0]["tokens_per_s"]
    print(f"\nserver load, {model}, streaming, greedy, mixed preferences and methods\n")
    print("| users | requests | errors | tokens/s | × 1 user | TTFT p50 s | TTFT p95 s | ITL p50 ms | ITL p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['users']} | {row['requests']} | {len(row['errors'])} | {row['tokens_per_s']:.1f} | "
              f"{row['tokens_per_s'] / single:.2f} | {quantile(row['ttft'], 50):.2f} | "
              f"{quantile(row['ttft'], 95):.2f} | {1000 * quantile(row['gaps'], 50):.0f} | "
              f"{1000 * quantile(row['gaps'], 95):.0f} |")
    same = sum(a["text"] == b["text"] for a, b in zip(last, again))
    print(f"\ngreedy answers under load ({levels[-1]} users) equal to the same request alone: {same}/{len(last)}")
    for row in rows:
        for error in row["errors"][:3]:
            print(f"error ({row['users']} users): {error}")
    return 0 if same == len(last) and not any(row["errors"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
