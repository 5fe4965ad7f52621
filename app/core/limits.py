"""Request body bounds, enforced before any route reads the body.

A pure ASGI middleware: a declared Content-Length over the limit is refused at once
(413), and a chunked body is counted as it streams, so no request can make a worker
buffer more than its route allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so FastAPI's body parsing re-raises it
    as is (it wraps other exceptions into a 400) and the error handler renders a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

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
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
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
