"""The default storage backend: files under ``DATA_DIR/media``."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from app.core.config import get_settings
from app.core.storage.base import CHUNK_BYTES, Data


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
