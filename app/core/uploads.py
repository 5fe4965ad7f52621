"""Multipart uploads read in the event loop, after the request is authenticated and authorized.

FastAPI reads and spools a whole multipart body before running a route's dependencies, so a
client without a token could make us read 150 MB before its 401. Upload routes therefore
declare no ``File`` parameter: their dependencies (the token, the role, the event) run first,
and only then :func:`received_files` pulls the body from the client chunk by chunk and applies
the limits while reading: a part larger than ``max_part_bytes`` is dropped as it streams
(reported, never kept beyond the limit), more than ``max_parts`` file parts is a 413. The
whole body is still bounded in size, rate and total time by ``core.limits.RequestBoundsMiddleware``.

The body is read by the worker's event loop, never by a thread of the pool: a client that
trickles its upload holds a socket and a little memory, not one of the threads that serve
every other request. Routes run only the processing (checks, storage, the database) in the
threadpool, once the body is complete. How many uploads one worker receives at once, and one
user sends at once, is capped by the route (``core.limits.ConcurrencyCap``).

A file part is hashed (SHA-256) and spooled as it arrives: in memory up to 1 MiB (and 8 MiB
for all the parts of a request), then in a temporary file written from a thread in 1 MiB
steps, so a 40 MB photo is never held in memory and the event loop never waits on the disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import Any

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.core.errors import PayloadTooLarge, Unprocessable


def missing_files(field: str, message: str | None = None) -> Unprocessable:
    """The 422 of a body without the expected file part, in the shape of validation errors."""
    message = message or f"Send the file(s) as multipart/form-data, in the field '{field}'."
    return Unprocessable(
        message, code="validation_error", fields=[{"field": field, "message": message, "type": "missing"}]
    )


_SPOOL_BYTES = 1024 * 1024
# Beyond this much held in memory by the parts of one request, new parts go to disk at once.
_MEMORY_BUDGET = 8 * 1024 * 1024


@dataclass
class Part:
    """One file part: its field name, the client's filename and its content, spooled (empty
    and ``too_large`` when it exceeded the part limit)."""

    field: str
    filename: str | None
    # Closed by received_files when its block ends.
    file: SpooledTemporaryFile[bytes] = dataclasses.field(
        default_factory=lambda: SpooledTemporaryFile(_SPOOL_BYTES)  # noqa: SIM115
    )
    size: int = 0
    too_large: bool = False
    on_disk: bool = False
    stored: int = 0  # bytes in ``file`` (and ``pending``), as opposed to ``size`` seen
    pending: bytearray = dataclasses.field(default_factory=bytearray)  # for the disk, unwritten
    # SHA-256 of the content, computed as it streams in (what dedupes a photo sent again).
    digest: Any = dataclasses.field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of the whole content (meaningless when ``too_large``)."""
        return str(self.digest.hexdigest())

    def read(self) -> bytes:
        """The whole content (for small parts such as a selfie)."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()

    def _write_pending(self) -> None:  # in a thread: it may wait on the disk
        self.file.rollover()
        self.file.write(self.pending)
        self.pending.clear()


@dataclass
class _Reader:
    """The parser's callbacks (synchronous, in the event loop) record what to keep; the
    reading loop then writes it, going to a thread only for the disk."""

    fields: set[str]
    max_part_bytes: int
    max_parts: int
    parts: list[Part] = field(default_factory=list)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    current: Part | None = None
    writes: list[tuple[Part, bytes | None]] = field(default_factory=list)  # None: drop it all
    in_memory: int = 0

    def on_part_begin(self) -> None:
        self.headers, self.current = {}, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None or name not in self.fields:
            return  # a form field, or a file nobody asked for: skipped, never stored
        if len(self.parts) >= self.max_parts:
            raise PayloadTooLarge(f"Send at most {self.max_parts} files per request.", code="too_many_files")
        part = Part(name, filename.decode("utf-8", "replace"))
        part.on_disk = self.in_memory >= _MEMORY_BUDGET
        self.parts.append(part)
        self.current = part

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None or part.too_large:
            return
        part.size += end - start
        if part.size > self.max_part_bytes:
            part.too_large = True
            self.writes.append((part, None))
            return
        self.writes.append((part, data[start:end]))

    def on_part_end(self) -> None:
        self.current = None

    async def apply_writes(self, *, final: bool) -> None:
        writes, self.writes = self.writes, []
        for part, data in writes:
            if data is None:
                self.in_memory -= 0 if part.on_disk else part.stored
                part.stored = 0
                part.pending.clear()
                part.file.close()
                part.file = SpooledTemporaryFile(_SPOOL_BYTES)  # noqa: SIM115 - closed with the part
                part.on_disk = False
                part.digest = hashlib.sha256()
                continue
            part.digest.update(data)
            if not part.on_disk and part.stored + len(data) <= _SPOOL_BYTES:
                part.file.write(data)
                self.in_memory += len(data)
            else:
                if not part.on_disk:
                    part.on_disk = True
                    self.in_memory -= part.stored
                part.pending += data
                if len(part.pending) >= _SPOOL_BYTES:
                    await anyio.to_thread.run_sync(part._write_pending)
            part.stored += len(data)
        if final:
            for part in self.parts:
                if part.pending:
                    await anyio.to_thread.run_sync(part._write_pending)
                part.file.seek(0)


def _boundary(request: Request, field: str) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise missing_files(field)
    return params[b"boundary"]


@asynccontextmanager
async def received_files(
    request: Request, *, fields: set[str], max_part_bytes: int, max_parts: int
) -> AsyncIterator[list[Part]]:
    """Read the whole body (in the event loop); within the block, its file parts named in
    ``fields``, in order, each rewound; they are closed after the block.

    Raises a 422 (``missing_files``) for a body that is not multipart or that the client
    abandoned, ``PayloadTooLarge`` (413 ``too_many_files``) past ``max_parts`` file parts,
    and lets the middleware's 408 (too slow) and 413 (too large) through.
    """
    (field_name,) = sorted(fields)[:1]
    reader = _Reader(fields, max_part_bytes, max_parts)
    callbacks: Any = {
        name: getattr(reader, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(_boundary(request, field_name), callbacks)
    try:
        try:
            async for chunk in request.stream():
                if chunk:
                    parser.write(chunk)
                    await reader.apply_writes(final=False)
            parser.finalize()
        except MultipartParseError as exc:
            raise missing_files(field_name, f"The multipart body is malformed: {exc}") from None
        except ClientDisconnect:
            raise missing_files(field_name, "The upload was interrupted.") from None
        await reader.apply_writes(final=True)
        yield reader.parts
    finally:
        for part in reader.parts:
            part.close()


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
