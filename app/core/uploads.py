"""Multipart uploads read as a stream, after the request is authenticated and authorized.

FastAPI reads and spools a whole multipart body before running a route's dependencies, so a
client without a token could make us read 150 MB before its 401. Upload routes therefore
declare no ``File`` parameter: their dependencies (the token, the role, the event) run first,
and only then :func:`read_parts` pulls the body from the client chunk by chunk, hands each
file part over as soon as it is complete, and applies the limits while reading: a part
larger than ``max_part_bytes`` is dropped as it streams (reported, never buffered beyond the
limit), more than ``max_parts`` parts is a 413. The whole body is still bounded in size and
read time by ``core.limits.RequestBoundsMiddleware``.

A file part is spooled as it arrives (in memory up to 1 MiB, then in a temporary file), so a
40 MB photo is never held in memory; storage then streams it on.

Routes stay synchronous (they run in the threadpool); the body is pulled from the event loop
with ``anyio.from_thread``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import Any

import anyio.from_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.core.errors import PayloadTooLarge, Unprocessable

#: Form fields that are not files are tiny; anything bigger is not ours.
_MAX_FIELD_BYTES = 4096


def missing_files(field: str, message: str | None = None) -> Unprocessable:
    """The 422 of a body without the expected file part, in the shape of validation errors."""
    message = message or f"Send the file(s) as multipart/form-data, in the field '{field}'."
    return Unprocessable(
        message, code="validation_error", fields=[{"field": field, "message": message, "type": "missing"}]
    )


_SPOOL_BYTES = 1024 * 1024


@dataclass
class Part:
    """One file part: its field name, the client's filename and its content, spooled (empty
    and ``too_large`` when it exceeded the part limit)."""

    field: str
    filename: str | None
    # Closed by read_parts once the part has been handled.
    file: SpooledTemporaryFile[bytes] = dataclasses.field(
        default_factory=lambda: SpooledTemporaryFile(_SPOOL_BYTES)  # noqa: SIM115
    )
    size: int = 0
    too_large: bool = False

    def read(self) -> bytes:
        """The whole content (for small parts such as a selfie)."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


@dataclass
class _State:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    current: Part | None = None
    done: deque[Part] = field(default_factory=deque)


def _boundary(request: Request, field: str) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise missing_files(field)
    return params[b"boundary"]


def read_parts(request: Request, *, fields: set[str], max_part_bytes: int, max_parts: int) -> Iterator[Part]:
    """The file parts of the body named in ``fields``, one at a time, as they complete.

    Raises a 422 (``missing_files``) for a body that is not multipart, and ``PayloadTooLarge``
    (413 ``too_many_files``) past ``max_parts`` file parts.
    """
    (field_name,) = sorted(fields)[:1]
    state = _State()
    seen = 0

    def on_part_begin() -> None:
        state.headers, state.current = {}, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        state.headers[bytes(state.header_field).lower()] = bytes(state.header_value)
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        state.current = Part(name, filename.decode("utf-8", "replace") if filename is not None else None)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = state.current
        if part is None or part.too_large:
            return
        limit = max_part_bytes if part.filename is not None else _MAX_FIELD_BYTES
        part.size += end - start
        if part.size > limit:
            part.too_large = True
            part.file.seek(0)
            part.file.truncate()
            return
        part.file.write(data[start:end])

    def on_part_end() -> None:
        part = state.current
        if part is not None and part.filename is not None and part.field in fields:
            part.file.seek(0)
            state.done.append(part)
        elif part is not None:
            part.close()
        state.current = None

    parser = MultipartParser(
        _boundary(request, field_name),
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    stream: AsyncIterator[bytes] = request.stream()
    while True:
        chunk = anyio.from_thread.run(_next_chunk, stream, field_name)
        try:
            if chunk is None:
                parser.finalize()
            else:
                parser.write(chunk)
        except MultipartParseError as exc:
            raise missing_files(field_name, f"The multipart body is malformed: {exc}") from None
        while state.done:
            seen += 1
            part = state.done.popleft()
            try:
                if seen > max_parts:
                    message = f"Send at most {max_parts} files per request."
                    raise PayloadTooLarge(message, code="too_many_files")
                yield part
            finally:
                part.close()
        if chunk is None:
            return


async def _next_chunk(stream: AsyncIterator[bytes], field: str) -> bytes | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None
    except ClientDisconnect:
        raise missing_files(field, "The upload was interrupted.") from None


def multipart_body(field: str, description: str, *, many: bool) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of an upload route (it declares no ``File`` parameter)."""
    item = {"type": "string", "contentMediaType": "application/octet-stream"}
    schema = {"type": "array", "items": item} if many else item
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {field: {**schema, "description": description}},
                        "required": [field],
                    }
                }
            },
        }
    }
