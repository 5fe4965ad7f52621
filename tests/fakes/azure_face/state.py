"""What the fake Azure Face knows, and its rules: Azure's image limits and endpoint names,
the ``qualityForRecognition`` and find-similar confidence rules, Azure's error body, and the
records it keeps (faces seen in an image, injected faults, large face lists)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from starlette.responses import JSONResponse

from app.faces.providers.base import FaceBox

BASE = "/face/v1.0"
MAX_BYTES = 6 * 1024 * 1024
MIN_BYTES = 1024
MAX_SIDE = 4096

ENDPOINTS = (
    "detect",
    "create_list",
    "get_list",
    "add_face",
    "train",
    "training_status",
    "find_similar",
    "delete_list",
    "delete_face",
)


def quality_for_recognition(face_px: float, sharpness: float, brightness: float) -> str:
    """The fake's ``qualityForRecognition`` (see the package docstring)."""
    if sharpness < 40 or brightness < 40 or face_px < 40:
        return "low"
    if sharpness >= 80 and brightness >= 60 and face_px >= 100:
        return "high"
    return "medium"


def confidence(a: np.ndarray, b: np.ndarray) -> float:
    """The fake's find-similar confidence: ``clip(1 - euclidean distance, 0, 1)``."""
    return float(np.clip(1.0 - np.linalg.norm(a - b), 0.0, 1.0))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, code, message)


@dataclass(frozen=True)
class _Seen:
    box: FaceBox
    descriptor: np.ndarray
    quality: str


@dataclass
class _Fault:
    kind: str  # fail | throttle | delay
    endpoint: str | None
    status: int = 503
    retry_after: float = 1.0
    seconds: float = 0.0


@dataclass
class FakeList:
    list_id: str
    name: str
    recognition_model: str
    user_data: str | None = None
    faces: dict[str, tuple[np.ndarray, str | None]] = field(default_factory=dict)
    trained: dict[str, np.ndarray] | None = None  # what find-similar sees
    status: str = "nonstarted"
    created: str = field(default_factory=_now)
    last_action: str | None = None
    last_success: str | None = None
    _snapshot: dict[str, np.ndarray] = field(default_factory=dict)
    _done_at: float = 0.0

    def refresh(self) -> None:
        if self.status == "running" and time.monotonic() >= self._done_at:
            self.trained = self._snapshot
            self.status = "succeeded"
            self.last_action = self.last_success = _now()


def jpeg(img: Any, quality: int = 92) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()
