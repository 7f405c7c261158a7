"""The real server (uvicorn + the app + a scheduler thread) on a loopback socket for the length of a `with`."""

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn

from personalign.serving.app import create_app
from personalign.serving.config import ServerConfig
from personalign.serving.metrics import Metrics
from personalign.serving.scheduler import Scheduler

MODEL = "tiny"


@contextmanager
def live_server(engine, store=None, learner=None, **settings):
    """Yields (base url, scheduler); `settings` are ServerConfig fields (max_waiting, timeout, api_key, ...);
    `store`: a ProfileStore whose users' keys and preferences the server reads; `learner`: its PreferenceLearner."""
    config = ServerConfig(**settings)
    scheduler = Scheduler(engine, max_waiting=config.max_waiting, timeout_s=config.timeout,
                          metrics=Metrics()).start()
    app = create_app(scheduler, config, MODEL, "test", store, learner)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, held from the start: no race with other tests
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", scheduler
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        scheduler.stop()
        sock.close()
