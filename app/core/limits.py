"""Request bounds, enforced before any route reads the body: size, read time, idle waits; and
the in-process caps on requests that hold a worker's resources for long (uploads, streams).

``RequestBoundsMiddleware`` is a pure ASGI middleware: a declared Content-Length over the
limit is refused at once (413), a chunked body is counted as it streams, so no request can
make a worker buffer more than its route allows, and a body that arrives too slowly is cut
off with a 408 and the connection closed. Each path has its :class:`BodyBounds`: the body
must keep up a minimum average rate (``REQUEST_READ_TIMEOUT`` of grace, extended by one
second per ``min_rate`` bytes received, as Apache's mod_reqtimeout does) and, for uploads,
arrive within a total time, whatever its rate. Slow *headers* are bounded by the server
protocol (``app.ops.protocol``).

``idle()`` marks the part of a request that only waits (a long-poll, an event stream): the
in-flight bound counts requests being processed, not requests waiting for a client or for
news.

:class:`ConcurrencyCap` counts what one worker holds at once (uploads being received, event
streams), per owner and in all; the worker's event loop is the only thread that touches it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ServiceUnavailable
from app.core.throttle import TooManyRequests


class Slot(Protocol):
    """A request's place in the in-flight count (kept by the outermost middleware)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...


current_slot: ContextVar[Slot | None] = ContextVar("current_slot", default=None)


@asynccontextmanager
async def idle() -> AsyncIterator[None]:
    """Within this block the request does not count as in flight (it only waits)."""
    slot = current_slot.get()
    if slot is not None:
        slot.pause()
    try:
        yield
    finally:
        if slot is not None:
            slot.resume()


@dataclass(frozen=True)
class BodyBounds:
    """What a path's body may be: at most ``max_bytes``, at an average of at least
    ``min_rate`` bytes a second after the grace period, and (uploads) complete within
    ``max_seconds`` of the request's start."""

    max_bytes: int
    min_rate: int
    max_seconds: float | None = None


_TOO_SLOW = "The request body arrived too slowly; send it again."


class RequestReadTimeout(HTTPException):
    """Raised from ``receive`` when the body is late; rendered as 408 with the connection
    closed (whatever the client sends next belongs to the abandoned body)."""

    def __init__(self, message: str = _TOO_SLOW) -> None:
        super().__init__(408, message, headers={"Connection": "close"})


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing re-raises it
    as is (it wraps other exceptions into a 400) and the error handler renders a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


class RequestBoundsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        bounds_for: Callable[[str], BodyBounds],
        read_timeout: float,
    ) -> None:
        self.app = app
        self.bounds_for = bounds_for
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bounds = self.bounds_for(scope["path"])
        limit = bounds.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "bad_request", "Invalid Content-Length header.")
                    return
                if declared > limit:
                    await _reject_too_large(send, limit)
                    return
        received = 0
        body_complete = False
        response_started = False
        started = time.monotonic()
        last_moment = None if bounds.max_seconds is None else started + bounds.max_seconds

        def deadline() -> tuple[float, str]:
            by_rate = started + self.read_timeout + received / bounds.min_rate
            if last_moment is not None and last_moment < by_rate:
                return last_moment, (
                    f"The upload took longer than this endpoint allows ({bounds.max_seconds:g} s); "
                    "send it again over a faster connection."
                )
            return by_rate, _TOO_SLOW

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:  # only a disconnect can come now: no deadline
                return await receive()
            when, why = deadline()
            left = when - time.monotonic()
            if left <= 0:  # late, even if the next bytes are already buffered
                raise RequestReadTimeout(why)
            try:
                # asyncio.timeout, not wait_for: receive() must run in this task at once (the
                # in-flight count is paused at its start, before any other request is admitted).
                async with asyncio.timeout(left):
                    message = await receive()
            except TimeoutError:
                raise RequestReadTimeout(why) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _reject_too_large(send, limit)
        except RequestReadTimeout as exc:
            if not response_started:
                await _reject(send, 408, "request_timeout", str(exc.detail))


class ConcurrencyCap:
    """How many of something (uploads being received, event streams) this worker holds at
    once, per owner (a guest) and in all. Only the event loop's thread touches it, so no lock:
    ``acquire`` and ``release`` never await."""

    #: Seconds a refused client is told to wait: what is held ends within seconds or minutes.
    RETRY_AFTER = 5

    def __init__(self, what: str) -> None:
        self.what = what
        self.by_owner: Counter[str] = Counter()
        self.total = 0

    def acquire(self, owner: str, *, per_owner: int, per_worker: int | None = None) -> None:
        """Count one for ``owner``; 429 ``too_many_requests`` past ``per_owner``, 503
        ``service_unavailable`` past ``per_worker`` (both with ``Retry-After``)."""
        if self.by_owner[owner] >= per_owner:
            raise TooManyRequests(
                f"You already have {per_owner} {self.what} in progress; wait for one to finish.",
                headers={"Retry-After": str(self.RETRY_AFTER)},
                retry_after=self.RETRY_AFTER,
            )
        if per_worker is not None and self.total >= per_worker:
            raise ServiceUnavailable(
                f"The server is receiving as many {self.what} as it can; retry in a few seconds.",
                retry_after=self.RETRY_AFTER,
            )
        self.by_owner[owner] += 1
        self.total += 1

    def release(self, owner: str) -> None:
        self.total -= 1
        self.by_owner[owner] -= 1
        if self.by_owner[owner] <= 0:
            del self.by_owner[owner]

    @contextmanager
    def held(self, owner: str, *, per_owner: int, per_worker: int) -> Iterator[None]:
        """:meth:`acquire` for the duration of the block."""
        self.acquire(owner, per_owner=per_owner, per_worker=per_worker)
        try:
            yield
        finally:
            self.release(owner)


async def _reject_too_large(send: Send, limit: int) -> None:
    await _reject(send, 413, "payload_too_large", _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"The request body is larger than the {limit / 1024 / 1024:g} MiB this endpoint accepts."
    return f"The request body is larger than the {limit // 1024} KiB this endpoint accepts."


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
