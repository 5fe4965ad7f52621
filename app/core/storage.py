"""File storage for uploaded originals and derived images, under ``DATA_DIR/media``.

Keys are relative paths; writes are atomic (temporary file + rename) so a reader never
sees half a file. Workers on other machines need the same ``DATA_DIR`` mounted.

Files follow the transaction of the rows that name them: ``delete_after_commit`` removes
files once the rows that used them are gone for good, ``delete_if_rolled_back`` removes a
file written for rows that were never saved.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.core.config import get_settings

log = logging.getLogger("app.storage")


def new_key(prefix: str, extension: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex}.{extension.lstrip('.')}"


def path_for(key: str) -> Path:
    root = get_settings().media_dir.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"storage key escapes the media folder: {key!r}")
    return path


def save(key: str, data: bytes) -> Path:
    """Write ``key`` atomically; folders are created 0700 and files 0600 (guests' faces)."""
    path = path_for(key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(key: str) -> bytes:
    return path_for(key).read_bytes()


def delete(key: str | None) -> None:
    if key:
        path_for(key).unlink(missing_ok=True)


def delete_all(keys: Sequence[str | None]) -> None:
    """Delete these files, logging (not raising) what cannot be deleted."""
    _delete_quietly([k for k in keys if k])


def delete_folders(prefixes: list[str]) -> None:
    """Delete whole folders of keys (an erased event's), whatever files they still hold."""
    import shutil

    for prefix in prefixes:
        shutil.rmtree(path_for(prefix), ignore_errors=True)


def delete_unnamed(named: set[str], *, older_than: timedelta) -> int:
    """Delete the files under the media folder whose key is not in ``named`` and that were
    last written more than ``older_than`` ago; how many."""
    root = get_settings().media_dir
    if not root.exists():
        return 0
    cutoff = time.time() - older_than.total_seconds()
    deleted = 0
    for path in root.rglob("*"):
        if path.is_file() and str(path.relative_to(root)) not in named and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def delete_after_commit(session: Session, keys: list[str]) -> None:
    """Delete these files once ``session`` commits (nothing happens if it rolls back)."""
    session.info.setdefault("storage_after_commit", []).extend(k for k in keys if k)


def delete_if_rolled_back(session: Session, keys: list[str]) -> None:
    """Delete these files if ``session`` rolls back (they belong to rows never saved)."""
    session.info.setdefault("storage_if_rolled_back", []).extend(k for k in keys if k)


def _delete_quietly(keys: list[str]) -> None:
    for key in keys:
        try:
            delete(key)
        except OSError:
            log.warning("could not delete %s", key, exc_info=True)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop("storage_if_rolled_back", None)
    _delete_quietly(session.info.pop("storage_after_commit", []))


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop("storage_after_commit", None)
    _delete_quietly(session.info.pop("storage_if_rolled_back", []))
