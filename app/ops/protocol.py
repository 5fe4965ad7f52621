"""The server side of slow clients: a time limit on receiving a request's headers.

Uvicorn bounds the wait *between* keep-alive requests but not a connection that opens and
sends nothing, or sends its headers a byte at a time (slowloris). This protocol arms a
timer when a connection opens and when a request begins, and answers 408 and closes the
connection if the headers are not complete within ``REQUEST_READ_TIMEOUT``. A request the
parser refuses (a malformed line, a 100 KB URL) gets the API's JSON error shape, not
Uvicorn's plain text. The body's
limit is the application's (``app.core.limits``). The web workers
(``app.ops.gunicorn_worker.WebWorker``) serve with it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import get_settings

_BODY = b'{"error": {"code": "request_timeout", "message": "The request headers arrived too slowly."}}'
RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


def _json_400(message: str) -> bytes:
    body = json.dumps({"error": {"code": "bad_request", "message": message}}).encode()
    return (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: application/json\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class HeaderTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().request_read_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(RESPONSE_408)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(
            _json_400(f"{msg.rstrip('.')}: the request line or its headers are malformed or too long.")
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
