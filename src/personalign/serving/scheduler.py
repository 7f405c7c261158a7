"""The one owner of the engine in a server: a thread that applies submits and cancels between steps, steps the
engine while anything waits or runs, and routes each event to its request's ticket.

The HTTP handlers live on an asyncio event loop and never touch the engine: they put a ticket in the inbox and
await its events, so a decoding step never blocks the loop. A ticket's first item says whether the engine
accepted the request (its own checks: context length, adapters the method needs) or why not; then come the
StepEvents, the last one carrying the result. An exception inside a step ends the requests of that step, not the
thread.
"""

import asyncio
import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

from ..decoding.engine import Engine, StepEvent
from ..decoding.request import GenerationRequest
from ..errors import PersonalignError
from .metrics import Metrics

ACCEPTED = "accepted"  # a ticket's first item when the engine took the request


class QueueFull(Exception):
    """More requests wait than the server queues (the HTTP layer answers 429)."""


class RequestTimeout(Exception):
    """The request ran past the server's per-request time limit."""


class SchedulerFailure(Exception):
    """A step failed; the requests decoding in it ended (the server keeps going)."""


@dataclass(eq=False)
class Ticket:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    deadline: float | None
    items: asyncio.Queue = field(default_factory=asyncio.Queue)
    id: int = field(default_factory=itertools.count().__next__)
    arrived: float = field(default_factory=time.monotonic)
    last_token: float | None = None
    engine_id: int | None = None

    async def next(self):
        """The next item: ACCEPTED, a StepEvent, or an exception saying why the request ended."""
        return await self.items.get()

    def put(self, item) -> None:  # from the scheduler thread
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass


class Scheduler:
    def __init__(self, engine: Engine, *, max_waiting: int, timeout_s: float | None = None,
                 metrics: Metrics | None = None):
        """`engine` with its admission limits set (max_running, max_prefill_tokens); at most `max_waiting`
        requests wait for a place (more are refused with QueueFull); a request running longer than `timeout_s`
        ends with RequestTimeout."""
        self.engine, self.max_waiting, self.timeout_s = engine, max_waiting, timeout_s
        self.metrics = metrics
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: set[int] = set()  # tickets not yet decoding (inbox or the engine's pending list)
        self._tickets: dict[int, Ticket] = {}  # engine request id -> ticket
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="personalign-scheduler", daemon=True)

    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(timeout=30)
        close = getattr(self.engine, "close", None)  # a backend with resources of its own (vLLM's child server)
        if close:
            close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- called from the event loop ----------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> Ticket:
        """Queue a request; raises QueueFull when `max_waiting` already wait."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        ticket = Ticket(request, asyncio.get_running_loop(), deadline)
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} requests are waiting already")
            self._waiting.add(ticket.id)
        self._inbox.put(("submit", ticket))
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """End a request without a result (its client went away); applied between steps."""
        self._inbox.put(("cancel", ticket))

    # ---- the owner thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._apply_inbox(block=not self.engine.busy)
            if self._stop.is_set():
                break
            self._end_overdue()
            if self.engine.busy:
                self._step()
            self._publish_load()
        for ticket in list(self._tickets.values()):
            ticket.put(SchedulerFailure("the server is shutting down"))

    def _apply_inbox(self, block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
            while item is not None:
                kind, ticket = item
                self._submit(ticket) if kind == "submit" else self._cancel(ticket)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass

    def _submit(self, ticket: Ticket) -> None:
        try:
            ticket.engine_id = self.engine.submit(ticket.request)
        except PersonalignError as error:  # the engine's own checks (context, adapters): this request only
            self._forget(ticket)
            ticket.put(error)
            return
        self._tickets[ticket.engine_id] = ticket
        ticket.put(ACCEPTED)

    def _cancel(self, ticket: Ticket) -> None:
        if ticket.engine_id in self._tickets:  # still decoding or waiting in the engine (else: ended already)
            self.engine.cancel(ticket.engine_id)
            self._forget(ticket)
            if self.metrics:
                self.metrics.cancelled.inc()

    def _end_overdue(self) -> None:
        now = time.monotonic()
        for ticket in [t for t in self._tickets.values() if t.deadline is not None and now > t.deadline]:
            self.engine.cancel(ticket.engine_id)
            self._forget(ticket)
            ticket.put(RequestTimeout(f"the request ran past the server's limit of {self.timeout_s:g} s"))

    def _step(self) -> None:
        try:
            events = self.engine.step()
        except Exception as error:  # noqa: BLE001 - a bug in one step must not take the server down
            for engine_id, ticket in list(self._tickets.items()):
                self.engine.cancel(engine_id)
                self._forget(ticket)
                ticket.put(SchedulerFailure(f"decoding failed: {type(error).__name__}: {error}"))
            return
        now = time.monotonic()
        for event in events:
            ticket = self._tickets.get(event.request_id)
            if ticket is None:
                continue
            if event.error is not None:  # this request only
                self._forget(ticket)
                ticket.put(event.error)
                continue
            self._record_token(ticket, now)
            if event.result is not None:
                self._forget(ticket)
                if self.metrics:
                    self.metrics.prompt_tokens.inc(len(event.result.prompt_token_ids))
            ticket.put(event)

    def _record_token(self, ticket: Ticket, now: float) -> None:
        if ticket.last_token is None:
            with self._lock:
                self._waiting.discard(ticket.id)
        if self.metrics:
            self.metrics.generation_tokens.inc()
            if ticket.last_token is None:
                self.metrics.time_to_first_token.observe(now - ticket.arrived)
            else:
                self.metrics.inter_token_latency.observe(now - ticket.last_token)
        ticket.last_token = now

    def _forget(self, ticket: Ticket) -> None:
        with self._lock:
            self._waiting.discard(ticket.id)
        if ticket.engine_id is not None:
            self._tickets.pop(ticket.engine_id, None)

    def _publish_load(self) -> None:
        if self.metrics:
            self.metrics.running.set(self.engine.running)
            with self._lock:
                self.metrics.waiting.set(len(self._waiting))


def is_final(item) -> bool:
    """Whether a ticket's item ends its request."""
    return isinstance(item, Exception) or (isinstance(item, StepEvent) and item.result is not None)
