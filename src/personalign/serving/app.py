"""The OpenAI-compatible HTTP API (FastAPI): handlers parse and check a request, hand it to the scheduler and relay
its events as one JSON answer or as server-sent events. They never touch the engine themselves.

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /health   GET /version   GET /metrics
    GET /   the playground page (playground.html)
"""

import asyncio
import json
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from ..decoding import methods
from ..decoding.engine import StepEvent
from ..decoding.request import GenerationResult
from .config import ServerConfig
from .http_errors import ApiError, error_body
from .json_body import read_json
from .metrics import Metrics
from .middleware import BearerAuth, CountRequests
from .openai_protocol import Limits, ParsedRequest, Shaper, finish_reason, parse_chat, parse_completion
from .profiles import ProfileStore
from .scheduler import ACCEPTED, QueueFull, RequestTimeout, Scheduler, Ticket
from .preference_learner import PreferenceLearner
from .user_routes import Profiles, add_user_routes, identity, with_profile

PLAYGROUND = Path(__file__).with_name("playground.html")
ROUTES = {"/", "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/version", "/metrics",
          "/v1/users", "/v1/users/me/profile"}
RETRY_AFTER_S = 1  # what a client told 429 waits before trying again
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there


def create_app(scheduler: Scheduler, config: ServerConfig, model_name: str, version: str,
               store: ProfileStore | None = None, learner: PreferenceLearner | None = None) -> FastAPI:
    """The app around a started scheduler (whose engine carries the admission limits), with users' profiles from
    `store` when given, and their weights learned from feedback by `learner` when given."""
    profiles = Profiles(store, learner) if store is not None else None
    metrics = scheduler.metrics or Metrics()
    limits = Limits(config.max_tokens)
    app = FastAPI(title="personalign", version=version, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.learner = learner
    app.add_middleware(BearerAuth, keys=config.keys(), store=store)
    app.add_middleware(CountRequests, metrics=metrics, routes=ROUTES)  # added last = outermost: counts 401s too

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return error.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):  # unknown routes, wrong verbs
        return JSONResponse(error_body(error.status_code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        return JSONResponse(error_body(400, str(error)), status_code=400)

    @app.get("/")
    async def playground():  # a static page: it reads nothing without the key the user types into it
        return HTMLResponse(PLAYGROUND.read_text(encoding="utf-8"))

    @app.get("/health")
    async def health():
        if not scheduler.alive:
            return JSONResponse(error_body(503, "the scheduler has stopped"), status_code=503)
        return {"status": "ok"}

    @app.get("/version")
    async def version_route():
        return {"version": version}

    @app.get("/metrics")
    async def metrics_route():
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": int(time.time()),
                                            "owned_by": "personalign", "methods": methods.names()}]}

    if profiles is not None:
        add_user_routes(app, profiles, config.max_body_bytes)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = with_profile(await read_json(request, config.max_body_bytes), identity(request), profiles)
        return await _answer(request, parse_chat(body, model_name, limits), Shaper(model_name, chat=True))

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = with_profile(await read_json(request, config.max_body_bytes), identity(request), profiles)
        return await _answer(request, parse_completion(body, model_name, limits), Shaper(model_name, chat=False))

    async def _answer(request: Request, parsed: ParsedRequest, shaper: Shaper):
        try:
            ticket = scheduler.submit(parsed.request)
        except QueueFull as full:
            raise ApiError(429, f"the server is busy ({full}); retry in a moment", code="queue_full",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        try:
            first = await _next_or_gone(request, ticket)
        except BaseException:
            scheduler.cancel(ticket)
            raise
        if first is not ACCEPTED:
            raise _as_api_error(first)
        if parsed.stream:
            return StreamingResponse(_sse(ticket, parsed, shaper), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            while True:
                item = await _next_or_gone(request, ticket)
                if isinstance(item, Exception):
                    raise _as_api_error(item)
                if item.result is not None:
                    return shaper.complete(item.result)
        except BaseException:
            scheduler.cancel(ticket)  # a no-op when the request has ended already
            raise

    async def _next_or_gone(request: Request, ticket: Ticket):
        """The ticket's next item; a client that went away meanwhile ends the request (CancelledError)."""
        while True:
            try:
                return await asyncio.wait_for(ticket.next(), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    raise asyncio.CancelledError("the client went away") from None

    async def _sse(ticket: Ticket, parsed: ParsedRequest, shaper: Shaper):
        done = False
        try:
            yield _event(shaper.chunk("", first=True))
            while not done:
                item = await ticket.next()
                if isinstance(item, Exception):
                    done = True
                    yield _event(_as_api_error(item).body())
                    break
                done = item.result is not None
                for chunk in _chunks(item, parsed, shaper):
                    yield chunk
            yield "data: [DONE]\n\n"
        finally:
            if not done:  # the client went away mid-answer: free its rows at the next step
                scheduler.cancel(ticket)

    return app


def _chunks(event: StepEvent, parsed: ParsedRequest, shaper: Shaper):
    result: GenerationResult | None = event.result
    extra = {"usage": None} if parsed.include_usage else {}
    if event.delta:
        yield _event(shaper.chunk(event.delta, **extra))
    if result is not None:
        yield _event(shaper.chunk(None, finish_reason(result), **extra))
        if parsed.include_usage:
            yield _event(shaper.usage_chunk(result))


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _as_api_error(error: Exception) -> ApiError:
    if isinstance(error, RequestTimeout):
        return ApiError(408, str(error), code="timeout")
    if isinstance(error, ValueError):  # PersonalignError: the engine's own checks of this request
        return ApiError(400, str(error))
    return ApiError(500, str(error), code="server_error")
