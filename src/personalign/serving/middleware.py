"""Two plain ASGI middlewares (plain, so streaming responses and client disconnects pass through untouched):
bearer-key authentication on every route but /health, and a count of answered requests by route and status."""

import json

from .config import key_matches
from .http_errors import error_body
from .metrics import Metrics
from .profiles import ProfileStore, User

OPEN_ROUTES = ("/health", "/")  # the playground page is static: its calls carry the key
IDENTITY = "personalign.user"  # where the key's user is left in the ASGI scope for the handlers
OPERATOR = User("(operator)", admin=True, created=0.0)  # whoever holds the server's own --api-key


class BearerAuth:
    def __init__(self, app, keys: list[str], store: ProfileStore | None = None):
        """Keys: the server's own (--api-key, --api-key-file: the operator's) and, with a profile store, its users'.
        With neither, every route is open (the server then listens on loopback only)."""
        self.app, self.keys, self.store = app, keys, store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not (self.keys or self.store) or scope["path"] in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        who = self._who(given.strip()) if scheme.lower() == "bearer" else None
        if who is not None:
            scope[IDENTITY] = who
            return await self.app(scope, receive, send)
        message = "missing or wrong API key: send 'Authorization: Bearer KEY'"
        body = json.dumps(error_body(401, message, code="invalid_api_key")).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def _who(self, key: str) -> User | None:
        if self.keys and key_matches(key, self.keys):
            return OPERATOR
        return self.store.user_for_key(key) if self.store and key else None


class CountRequests:
    def __init__(self, app, metrics: Metrics, routes: set[str]):
        """`routes`: the paths counted by name; any other path is counted as "other" (unbounded labels would let
        a client grow the metrics without end)."""
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in self.routes else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
