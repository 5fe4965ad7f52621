"""Request bounds, enforced before any route reads the body: size, read time, idle waits.

``RequestBoundsMiddleware`` is a pure ASGI middleware: a declared Content-Length over the
limit is refused at once (413), a chunked body is counted as it streams, so no request can
make a worker buffer more than its route allows, and a body that arrives too slowly is cut
off with a 408 and the connection closed (``REQUEST_READ_TIMEOUT``, extended by one second
per ``REQUEST_MIN_RATE`` bytes received, as Apache's mod_reqtimeout does). Slow *headers*
are bounded by the server protocol (``app.ops.protocol``).

``idle()`` marks the part of a request that only waits (a long-poll, an event stream): the
in-flight bound counts requests being processed, not requests waiting for a client or for
news.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


class RequestReadTimeout(HTTPException):
    """Raised from ``receive`` when the body is late; rendered as 408 with the connection
    closed (whatever the client sends next belongs to the abandoned body)."""

    def __init__(self) -> None:
        super().__init__(
            408, "The request body arrived too slowly; send it again.", headers={"Connection": "close"}
        )


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
        limit_for: Callable[[str], int],
        read_timeout: float,
        min_rate: int,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.read_timeout = read_timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
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

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:  # only a disconnect can come now: no deadline
                return await receive()
            deadline = started + self.read_timeout + received / self.min_rate
            try:
                # asyncio.timeout, not wait_for: receive() must run in this task at once (the
                # in-flight count is paused at its start, before any other request is admitted).
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise RequestReadTimeout() from None
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
