"""Per-request bookkeeping: the in-flight bound, timing, metrics (which ``/api/stats`` reads
too), access log.

A pure ASGI middleware, outermost, so it also sees requests refused by inner layers.
Beyond ``MAX_IN_FLIGHT`` requests being processed in this worker, a request gets an
immediate 503 with ``Retry-After`` instead of waiting behind the others; the health,
stats and metrics endpoints are exempt so operators can still see what is going on.
A request does not count while it waits for its client (its body trickling in) or only
waits for news (``app.core.limits.idle``): slow clients cannot take the slots of others.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.limits import current_slot
from app.ops.metrics import IN_FLIGHT, LATENCY, OVERLOAD_REJECTED, REQUESTS

access_log = logging.getLogger("app.access")
EXEMPT = frozenset({"/api/health-check", "/api/stats", "/api/db-raw-test", "/metrics"})
_OVERLOADED = json.dumps(
    {"error": {"code": "overloaded", "message": "The server is busy; retry in a moment."}}
).encode()


OVERLOAD_MEMORY_SECONDS = 5.0


class WorkerLoad:
    """This worker's admission state (the in-flight bound is per worker, by design)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.rejected_overload = 0
        self.last_overload = 0.0  # time.monotonic() of the last 503 "overloaded"


load = WorkerLoad()


class _Slot:
    """This request's share of the in-flight count; paused while it only waits."""

    def __init__(self) -> None:
        self.counted = False

    def pause(self) -> None:
        if self.counted:
            self.counted = False
            load.in_flight -= 1
            IN_FLIGHT.dec()

    def resume(self) -> None:
        if not self.counted:
            self.counted = True
            load.in_flight += 1
            IN_FLIGHT.inc()


def overloaded(max_in_flight: int) -> bool:
    """Whether this worker refuses work now, or did within the last few seconds."""
    recent = time.monotonic() - load.last_overload < OVERLOAD_MEMORY_SECONDS
    return load.in_flight >= max_in_flight or (load.rejected_overload > 0 and recent)


def _hardened(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Every response: no MIME sniffing. API responses (tokens, personal data) are never
    stored by a browser or a proxy, unless the route chose its own caching."""
    names = {name.lower() for name, _ in headers}
    if b"x-content-type-options" not in names:
        headers.append((b"x-content-type-options", b"nosniff"))
    if scope["path"].startswith("/api/") and b"cache-control" not in names:
        headers.append((b"cache-control", b"no-store"))
    return headers


def endpoint_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or "unmatched"
    return f"{scope['method']} {path}"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if load.in_flight >= self.max_in_flight and scope["path"] not in EXEMPT:
            load.rejected_overload += 1
            load.last_overload = time.monotonic()
            OVERLOAD_REJECTED.inc()
            await _send_overloaded(send)
            self._finish(scope, 503, 0.0, "overloaded")
            return
        status = 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _hardened(scope, list(message.get("headers", [])))
            await send(message)

        slot = _Slot()

        async def receive_uncounted() -> Message:
            # Waiting for the client's bytes is not processing.
            was_counted = slot.counted
            slot.pause()
            try:
                return await receive()
            finally:
                if was_counted:
                    slot.resume()

        slot.resume()
        token = current_slot.set(slot)
        try:
            await self.app(scope, receive_uncounted, send_with_status)
        finally:
            current_slot.reset(token)
            slot.pause()
            self._finish(scope, status, (time.perf_counter() - start) * 1000, endpoint_of(scope))

    @staticmethod
    def _finish(scope: Scope, status: int, ms: float, endpoint: str) -> None:
        method = scope["method"]
        REQUESTS.labels(method, endpoint, str(status)).inc()
        LATENCY.labels(method, endpoint).observe(ms / 1000)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            # Escaped: a "%0a" or a '%22' in a path would otherwise forge a line or a field.
            target = log_escape(scope["path"] + (f"?{query}" if query else ""))
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            line = '%s %s "%s %s" %d %.1fms'
            access_log.info(line, now, log_escape(str(client[0])), log_escape(method), target, status, ms)


def log_escape(text: str) -> str:
    """``text`` as one unambiguous field of a log line: a quote and a backslash are
    backslash-escaped, anything not printable (line breaks, escape sequences, Unicode line
    separators) written as its escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(_escaped(c) for c in text)


def _escaped(c: str) -> str:
    if c in ('"', "\\"):
        return "\\" + c
    return c if c.isprintable() else c.encode("unicode_escape").decode("ascii")


async def _send_overloaded(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_OVERLOADED)).encode()),
                (b"retry-after", b"1"),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _OVERLOADED})
