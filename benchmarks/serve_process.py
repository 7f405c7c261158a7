"""`personalign serve` in a child process on a free loopback port, for the server benchmarks; stopped on exit."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(extra_args: list[str], url: str | None = None, start_timeout: float = 300):
    """Yields (base url, the child process or None): the server at `url`, or a fresh one started with `extra_args`."""
    if url:
        yield url.rstrip("/"), None
        return
    port = free_port()
    command = [sys.executable, "-m", "personalign.cli", "serve", "--port", str(port), *extra_args]
    child = subprocess.Popen(command, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if child.poll() is not None:
                raise SystemExit(f"the server exited with code {child.returncode} before answering")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer /health within {start_timeout:g} s")
            time.sleep(0.5)
        yield url, child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
