"""The fake Azure Face's state and the checks every request passes: injected faults (fail,
throttle, delay), the subscription key, and face detection (``POST /detect``) by the local
dlib engine, cached by image content."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections import Counter
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.errors import AppError
from app.faces.engine import LocalDlibEngine, face_quality
from app.faces.images import load_rgb, probe_image
from tests.fakes.azure_face.state import (
    ENDPOINTS,
    MAX_BYTES,
    MAX_SIDE,
    MIN_BYTES,
    FakeList,
    _error,
    _Fault,
    _Refused,
    _Seen,
    quality_for_recognition,
)


class FakeFaceBase:
    """State, fault injection, the key check and detection; the endpoints build on it."""

    def __init__(self, *, key: str = "fake-face-key", train_seconds: float = 0.05) -> None:
        self.key = key
        self.train_seconds = train_seconds
        self.port = 0
        self.calls: Counter[str] = Counter()
        self.lists: dict[str, FakeList] = {}
        self.face_ids: dict[str, tuple[np.ndarray, str]] = {}
        self._faults: list[_Fault] = []
        self._seen: dict[str, list[_Seen]] = {}
        self._lock = threading.Lock()
        self._engine = LocalDlibEngine()

    # --- fault injection --------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 503, endpoint: str | None = None) -> None:
        self._add_faults(n, _Fault("fail", endpoint, status=status))

    def throttle_next(self, n: int = 1, *, retry_after: float = 1.0, endpoint: str | None = None) -> None:
        self._add_faults(n, _Fault("throttle", endpoint, status=429, retry_after=retry_after))

    def delay_next(self, n: int = 1, *, seconds: float, endpoint: str | None = None) -> None:
        self._add_faults(n, _Fault("delay", endpoint, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_faults(self, n: int, fault: _Fault) -> None:
        if fault.endpoint is not None and fault.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {fault.endpoint!r}; one of {ENDPOINTS}")
        with self._lock:
            self._faults.extend(_Fault(**vars(fault)) for _ in range(n))

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.endpoint in (None, endpoint):
                    return self._faults.pop(i)
        return None

    async def _gate(self, endpoint: str, request: Request) -> Response | None:
        """Count the call, apply an injected fault, check the key; a response ends the call."""
        with self._lock:
            self.calls[endpoint] += 1
        fault = self._take_fault(endpoint)
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "throttle":
                return _error(
                    429,
                    "429",
                    "Rate limit is exceeded. Try again later.",
                    headers={"Retry-After": f"{fault.retry_after:g}"},
                )
            else:
                return _error(fault.status, "InternalServerError", f"Injected failure ({fault.status}).")
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.key:
            return _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
                "a valid key for an active subscription and use a correct regional API endpoint.",
            )
        return None

    # --- faces --------------------------------------------------------------------------------

    def _faces_in(self, data: bytes) -> list[_Seen]:
        """The faces of an image (cached by content), largest first."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._seen.get(digest)
        if cached is not None:
            return cached
        if len(data) < MIN_BYTES:
            raise _Refused(400, "InvalidImageSize", "Image size is too small.")
        if len(data) > MAX_BYTES:
            raise _Refused(400, "InvalidImageSize", "Image size is too big.")
        try:
            info = probe_image(data, max_pixels=50_000_000)
        except AppError:
            raise _Refused(400, "InvalidImage", "Decoding error, image format unsupported.") from None
        if info.format not in ("JPEG", "PNG"):
            raise _Refused(400, "InvalidImage", "Decoding error, image format unsupported.")
        if max(info.width, info.height) > MAX_SIDE:
            raise _Refused(400, "InvalidImageSize", "Image dimensions are too big.")
        img = load_rgb(data, max_pixels=50_000_000)
        seen = []
        for face in self._engine.index_photo(data):
            assert face.descriptor is not None
            q = face_quality(img, face.box)
            seen.append(
                _Seen(
                    face.box,
                    face.descriptor,
                    quality_for_recognition(q["face_px"], q["sharpness"], q["brightness"]),
                )
            )
        seen.sort(key=lambda s: s.box.width * s.box.height, reverse=True)
        with self._lock:
            self._seen[digest] = seen
        return seen

    async def _detect(self, request: Request) -> Response:
        if refused := await self._gate("detect", request):
            return refused
        data = await request.body()
        q = request.query_params
        model = q.get("recognitionModel", "recognition_01")
        attributes = [a for a in q.get("returnFaceAttributes", "").split(",") if a]
        try:
            seen = await run_in_threadpool(self._faces_in, data)
        except _Refused as exc:
            return exc.response
        out = []
        for face in seen:
            item: dict[str, Any] = {
                "faceRectangle": {
                    "top": face.box.top,
                    "left": face.box.left,
                    "width": face.box.width,
                    "height": face.box.height,
                }
            }
            if q.get("returnFaceId", "true").lower() == "true":
                face_id = str(uuid.uuid4())
                with self._lock:
                    self.face_ids[face_id] = (face.descriptor, model)
                item["faceId"] = face_id
            if q.get("returnRecognitionModel", "false").lower() == "true":
                item["recognitionModel"] = model
            if "qualityForRecognition" in attributes:
                item["faceAttributes"] = {"qualityForRecognition": face.quality}
            out.append(item)
        return JSONResponse(out)
