"""Room on the local media disk: its free space, read at most once a second, and the floor
(``STORAGE_MIN_FREE_BYTES``, ``STORAGE_MIN_FREE_PERCENT``) under which new media are refused
with 507 ``storage_full``.

The floor is what keeps the database writable when uploads fill the disk: SQLite lives on the
same disk by default, and the deletions that free space (a photo, an event's purge) are
database writes. Only media writes check it; deletions never do. The reading is per process:
each write this process makes is taken off the cached figure at once, so a burst of uploads
within the second cannot overshoot the floor by more than what other processes write meanwhile.
With a bucket (``STORAGE_URL=s3://...``) there is no local disk to watch: nothing is refused.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Settings, get_settings
from app.core.errors import AppError

log = logging.getLogger("app.storage")
#: How long one reading of the disk's free space is used.
CACHE_SECONDS = 1.0
RETRY_AFTER_SECONDS = 60


class StorageFull(AppError):
    """The media disk is at its free-space floor (or full): nothing new is stored."""

    status_code = 507
    code = "storage_full"
    message = "The server has no room for new files right now; try again later."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class DiskSpace:
    """The local media disk as last read: what is free (for this service's user), its size,
    and the floor under which uploads are refused."""

    path: Path
    free_bytes: int
    total_bytes: int
    min_free_bytes: int

    @property
    def below_floor(self) -> bool:
        return self.free_bytes < self.min_free_bytes


@dataclass
class _Cache:
    read_at: float = float("-inf")
    path: Path | None = None
    free_bytes: int = 0
    total_bytes: int = 0


_cache = _Cache()
_lock = threading.Lock()
_refusing = False  # whether the last check refused: its change of state is logged once


def watched(settings: Settings) -> bool:
    """Whether uploads land on a local disk whose space is watched (not with a bucket)."""
    return not settings.storage_is_s3


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (the media folder is created on first write)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def min_free_bytes(settings: Settings, total_bytes: int) -> int:
    """The floor: the larger of STORAGE_MIN_FREE_BYTES and STORAGE_MIN_FREE_PERCENT of the disk."""
    share = int(total_bytes * settings.storage_min_free_percent / 100)
    return max(settings.storage_min_free_bytes, share)


def read_disk(path: Path) -> tuple[int, int]:
    """(free bytes, size) of the file system of ``path``, from the file system itself: free is
    what a user without privileges may still write."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def reading(settings: Settings | None = None, *, fresh: bool = False) -> DiskSpace:
    """The media disk's space, read from the file system at most once per ``CACHE_SECONDS``
    (``fresh``: now)."""
    settings = settings or get_settings()
    path = _existing(settings.media_dir)
    with _lock:
        now = time.monotonic()
        if fresh or _cache.path != path or now - _cache.read_at >= CACHE_SECONDS:
            _cache.free_bytes, _cache.total_bytes = read_disk(path)
            _cache.read_at, _cache.path = now, path
        free, total = _cache.free_bytes, _cache.total_bytes
    return DiskSpace(path, free, total, min_free_bytes(settings, total))


def _spend(size: int) -> None:
    with _lock:
        _cache.free_bytes -= size


def forget() -> None:
    """Read the disk again at the next check (after it said it was full, and in tests)."""
    with _lock:
        _cache.read_at = float("-inf")


def ensure_room(size: int = 0) -> None:
    """Raise ``StorageFull`` unless ``size`` more bytes leave the media disk at or above its
    floor; else count them as spent until the next reading."""
    global _refusing
    settings = get_settings()
    if not watched(settings):
        return
    space = reading(settings)
    refuse = space.free_bytes - size < space.min_free_bytes
    if refuse != _refusing:
        _refusing = refuse
        if refuse:
            log.warning(
                "storage: %d bytes free on %s, at its floor of %d (STORAGE_MIN_FREE_BYTES): uploads are "
                "refused until space is freed (delete photos or events, or enlarge the disk)",
                space.free_bytes,
                space.path,
                space.min_free_bytes,
            )
        else:
            log.warning(
                "storage: %d bytes free on %s again: uploads are accepted", space.free_bytes, space.path
            )
    if refuse:
        raise StorageFull()
    _spend(size)
