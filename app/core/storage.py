"""File storage for uploaded originals and derived images, under ``DATA_DIR/media``.

Keys are relative paths; writes are atomic (temporary file + rename) so a reader never
sees half a file. Workers on other machines need the same ``DATA_DIR`` mounted.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from app.core.config import get_settings


def new_key(prefix: str, extension: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex}.{extension.lstrip('.')}"


def path_for(key: str) -> Path:
    root = get_settings().media_dir.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"storage key escapes the media folder: {key!r}")
    return path


def save(key: str, data: bytes) -> Path:
    path = path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
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
