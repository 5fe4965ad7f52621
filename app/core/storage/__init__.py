"""File storage for uploaded originals, derived images and selfies: local files under
``DATA_DIR/media`` (the default) or an S3-compatible bucket (``STORAGE_URL=s3://bucket/prefix``).

Keys are relative paths such as ``photos/12/ab34.jpg``; both backends take the same keys and
behave the same: a write is atomic (a reader never sees half a file), a missing key raises
``FileNotFoundError``, deleting a missing key is not an error. Uploads are handed over as file
objects and streamed (S3 multipart), never read whole into memory by this module.

Files follow the transaction of the rows that name them: ``delete_after_commit`` removes
files once the rows that used them are gone for good, ``delete_if_rolled_back`` removes a
file written for rows that were never saved.

Every write checks the local disk's free-space floor first, and a full disk is the same answer:
``StorageFull`` (507 ``storage_full``, ``space``); deletions never check anything.
"""

from __future__ import annotations

import errno
import io
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.storage import space
from app.core.storage.base import CHUNK_BYTES as CHUNK_BYTES
from app.core.storage.base import Backend, Data, valid_key
from app.core.storage.local import LocalBackend
from app.core.storage.s3 import S3Backend
from app.core.storage.space import StorageFull as StorageFull
from app.core.storage.space import ensure_room as ensure_room

log = logging.getLogger("app.storage")


_backend: Backend | None = None
_backend_lock = threading.Lock()


def backend() -> Backend:
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


def save(key: str, data: Data) -> None:
    """Write ``key`` atomically from bytes or a binary file (read from its current position).
    Raises ``StorageFull`` when the local disk would be left under its free-space floor, or is
    full: nothing is written then."""
    key = valid_key(key)
    ensure_room(_size_of(data))
    try:
        backend().save(key, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            space.forget()
            raise StorageFull() from exc
        raise


def _size_of(data: Data) -> int:
    """The bytes ``save`` will write: the rest of a file from its position (0 if unknown)."""
    if isinstance(data, bytes):
        return len(data)
    try:
        here = data.tell()
        end = data.seek(0, io.SEEK_END)
        data.seek(here)
    except (OSError, ValueError, AttributeError):
        return 0
    return max(0, end - here)


def load(key: str) -> bytes:
    return backend().load(valid_key(key))


def chunks(key: str) -> Iterator[bytes]:
    """The content of ``key`` in chunks of 1 MiB, fetched as they are consumed."""
    return backend().chunks(valid_key(key))


def size(key: str) -> int | None:
    """The size of ``key`` in bytes, or None when it does not exist."""
    return backend().size(valid_key(key))


def presigned_url(key: str, *, media_type: str, max_age: int) -> str | None:
    """A short-lived URL from which a client downloads ``key`` directly, or None when files
    are served by this service (local files, or STORAGE_PRESIGNED_URLS=false)."""
    return backend().presigned_url(valid_key(key), media_type=media_type, max_age=max_age)


def local_path(key: str) -> Path | None:
    return backend().local_path(valid_key(key))


def delete(key: str | None) -> None:
    if key:
        backend().delete_many([valid_key(key)])


def delete_all(keys: Sequence[str | None]) -> None:
    """Delete these files, logging (not raising) what cannot be deleted."""
    _delete_quietly([k for k in keys if k])


def delete_folders(prefixes: Iterable[str]) -> None:
    """Delete every key under these prefixes (an erased event's), whatever they still hold."""
    for prefix in prefixes:
        backend().delete_prefix(valid_key(prefix))


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
        backend().delete_many([valid_key(k) for k in keys])
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
