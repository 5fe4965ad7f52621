"""Builds the configured face provider (``FACE_PROVIDER``), once per worker process.

Only face-worker processes call this; web processes never load a face model.
"""

from __future__ import annotations

from functools import lru_cache

from app.core.config import get_settings
from app.faces.engine import FaceEngine


@lru_cache
def get_face_engine() -> FaceEngine:
    settings = get_settings()
    if settings.face_provider == "local":
        from app.faces.engine import LocalDlibEngine

        return LocalDlibEngine(max_pixels=settings.max_image_pixels)
    raise RuntimeError(f"unknown FACE_PROVIDER {settings.face_provider!r}")
