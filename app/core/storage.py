"""File storage for uploaded originals, derived images and selfies: local files under
``DATA_DIR/media`` (the default) or an S3-compatible bucket (``STORAGE_URL=s3://bucket/prefix``).

Keys are relative paths such as ``photos/12/ab34.jpg``; both backends take the same keys and
behave the same: a write is atomic (a reader never sees half a file), a missing key raises
``FileNotFoundError``, deleting a missing key is not an error. Uploads are handed over as file
objects and streamed (S3 multipart), never read whole into memory by this module.

Files follow the transaction of the rows that name them: ``delete_after_commit`` removes
files once the rows that used them are gone for good, ``delete_if_rolled_back`` removes a
file written for rows that were never saved.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.s3 import CHUNK_BYTES, Data, S3Backend

log = logging.getLogger("app.storage")


class Backend(Protocol):
    """What a storage backend does; keys are already validated."""

    description: str

    def save(self, key: str, data: Data) -> None: ...
    def load(self, key: str) -> bytes: ...
    def chunks(self, key: str) -> Iterator[bytes]: ...
    def size(self, key: str) -> int | None: ...
    def delete_many(self, keys: Sequence[str]) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def keys_older_than(self, cutoff: datetime) -> Iterator[str]: ...
    def local_path(self, key: str) -> Path | None: ...
    def presigned_url(self, key: str, *, media_type: str, max_age: int) -> str | None: ...
    def check(self) -> None: ...
    def public_origin(self) -> str | None: ...


def _valid(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalBackend:
    """Files under ``DATA_DIR/media``: folders 0700, files 0600 (guests' faces)."""

    @property
    def root(self) -> Path:
        return get_settings().media_dir

    @property
    def description(self) -> str:
        return f"local files in {self.root}"

    def path(self, key: str) -> Path:
        root = self.root.resolve()
        path = (root / key).resolve()
        if root not in path.parents:
            raise ValueError(f"storage key escapes the media folder: {key!r}")
        return path

    def save(self, key: str, data: Data) -> None:
        path = self.path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, bytes):
                    f.write(data)
                else:
                    shutil.copyfileobj(data, f, CHUNK_BYTES)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def chunks(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def keys_older_than(self, cutoff: datetime) -> Iterator[str]:
        if not self.root.exists():
            return
        limit = cutoff.timestamp()
        for path in self.root.rglob("*"):
            if path.is_file() and path.stat().st_mtime < limit:  # stale temporary files too
                yield path.relative_to(self.root).as_posix()

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def presigned_url(self, key: str, *, media_type: str, max_age: int) -> str | None:  # noqa: ARG002
        return None

    def check(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def public_origin(self) -> str | None:
        return None


_backend: LocalBackend | S3Backend | None = None
_backend_lock = threading.Lock()


def backend() -> LocalBackend | S3Backend:
    """This process's backend, from the settings (``forget_backend`` after changing them)."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                settings = get_settings()
                _backend = S3Backend(settings) if settings.storage_is_s3 else LocalBackend()
    return _backend


def forget_backend() -> None:
    global _backend
    _backend = None


def new_key(prefix: str, extension: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex}.{extension.lstrip('.')}"


def path_for(key: str) -> Path:
    """The file of ``key`` on local storage (tests and tools; not for S3)."""
    path = backend().local_path(_valid(key))
    if path is None:
        raise RuntimeError("storage is not local files")
    return path


def save(key: str, data: Data) -> None:
    """Write ``key`` atomically from bytes or a binary file (read from its current position)."""
    backend().save(_valid(key), data)


def load(key: str) -> bytes:
    return backend().load(_valid(key))


def chunks(key: str) -> Iterator[bytes]:
    """The content of ``key`` in chunks of 1 MiB, fetched as they are consumed."""
    return backend().chunks(_valid(key))


def size(key: str) -> int | None:
    """The size of ``key`` in bytes, or None when it does not exist."""
    return backend().size(_valid(key))


def presigned_url(key: str, *, media_type: str, max_age: int) -> str | None:
    """A short-lived URL from which a client downloads ``key`` directly, or None when files
    are served by this service (local files, or STORAGE_PRESIGNED_URLS=false)."""
    return backend().presigned_url(_valid(key), media_type=media_type, max_age=max_age)


def local_path(key: str) -> Path | None:
    return backend().local_path(_valid(key))


def delete(key: str | None) -> None:
    if key:
        backend().delete_many([_valid(key)])


def delete_all(keys: Sequence[str | None]) -> None:
    """Delete these files, logging (not raising) what cannot be deleted."""
    _delete_quietly([k for k in keys if k])


def delete_folders(prefixes: Iterable[str]) -> None:
    """Delete every key under these prefixes (an erased event's), whatever they still hold."""
    for prefix in prefixes:
        backend().delete_prefix(_valid(prefix))


def delete_unnamed(named: set[str], *, older_than: timedelta) -> int:
    """Delete the stored files whose key is not in ``named`` and that were last written more
    than ``older_than`` ago; how many."""
    cutoff = datetime.now(UTC) - older_than
    doomed = [k for k in backend().keys_older_than(cutoff) if k not in named]
    if doomed:
        backend().delete_many(doomed)
    return len(doomed)


def delete_after_commit(session: Session, keys: list[str]) -> None:
    """Delete these files once ``session`` commits (nothing happens if it rolls back)."""
    session.info.setdefault("storage_after_commit", []).extend(k for k in keys if k)


def delete_if_rolled_back(session: Session, keys: list[str]) -> None:
    """Delete these files if ``session`` rolls back (they belong to rows never saved)."""
    session.info.setdefault("storage_if_rolled_back", []).extend(k for k in keys if k)


def _delete_quietly(keys: list[str]) -> None:
    if not keys:
        return
    try:
        backend().delete_many([_valid(k) for k in keys])
    except Exception:  # the rows are gone already; the sweep of unnamed files retries
        log.warning("could not delete %d stored files (%s, ...)", len(keys), keys[0], exc_info=True)


def wait_until_reachable(timeout: float) -> None:
    """Raise the last error if the storage cannot be reached within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            backend().check()
            return
        except Exception as exc:
            # An answer (no such bucket, access denied) is final; no answer may be a server
            # still starting.
            if hasattr(exc, "response") or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop("storage_if_rolled_back", None)
    _delete_quietly(session.info.pop("storage_after_commit", []))


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop("storage_after_commit", None)
    _delete_quietly(session.info.pop("storage_if_rolled_back", []))
