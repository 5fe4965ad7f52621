"""A fake of the Azure Face REST API (v1.0), served over real HTTP on 127.0.0.1.

The real SDK client (``azure-cognitiveservices-vision-face``, msrest) talks to it exactly as
to Azure: same paths, verbs, query parameters, JSON bodies, status codes and error shape
(``{"error": {"code", "message"}}``). Implemented: ``POST /detect``, ``PUT``/``GET
/largefacelists/{id}``, ``POST /largefacelists/{id}/persistedfaces``, ``POST
/largefacelists/{id}/train``, ``GET /largefacelists/{id}/training`` and ``POST
/findsimilars``. Every request needs the ``Ocp-Apim-Subscription-Key`` header (401 otherwise).

Faces are real: detection runs the project's ``LocalDlibEngine`` on the posted image, so the
fixtures behave like real photos.

* Rectangles are the engine's boxes, largest face first (Azure's order).
* ``qualityForRecognition`` comes from the engine's metrics of the face crop
  (:func:`app.faces.engine.face_quality`): ``low`` when sharpness < 40, brightness < 40 or
  the face's short side < 40 px (what the local engine would refuse as blurry or dark);
  ``high`` when sharpness >= 80, brightness >= 60 and the side >= 100 px; else ``medium``.
  Real fixture selfies (sharpness 89-301, brightness 108-148) are ``medium`` or ``high``; a
  radius-6 Gaussian blur or darkening to 15 % makes them ``low``.
* Find-similar ``confidence = clip(1 - euclidean distance, 0, 1)`` between dlib descriptors:
  monotonic, and 0.5 is the local provider's match threshold (distance 0.5), so person A vs
  A is >= 0.5 and A vs B < 0.5 with the fixtures. ``matchPerson`` keeps confidence >= 0.5;
  ``matchFace`` returns the ranking as is.
* Large face list semantics: find-similar only sees the faces present when the last
  completed training *started* (never trained: 400 ``LargeFaceListNotTrained``); a training
  takes ``train_seconds`` (status ``running`` then ``succeeded``); training while one runs is
  409 ``ConcurrentOperationConflict``; list and query face must share a recognition model.
* Azure's image limits: JPEG or PNG (400 ``InvalidImage`` otherwise), 1 KB to 6 MB and at most
  4096 px a side (400 ``InvalidImageSize``).

Fault injection, consumed by the next matching requests (optionally of one endpoint, named
as in :attr:`FakeAzureFace.calls`): :meth:`fail_next` (an HTTP error status),
:meth:`throttle_next` (429 + ``Retry-After``), :meth:`delay_next` (answer late, then
normally). :meth:`stop` / :meth:`start` take the server down and back on the same port.
``calls`` counts every request per endpoint (faulted ones included).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.errors import AppError
from app.faces.engine import LocalDlibEngine, face_quality
from app.faces.images import load_rgb, probe_image
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
    """The fake's ``qualityForRecognition`` (see the module docstring)."""
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


class FakeAzureFace:
    """The fake service; see the module docstring. ``start()`` before use, ``stop()`` after."""

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
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route(f"{BASE}/detect", self._detect, methods=["POST"]),
                Route(f"{BASE}/largefacelists/{{list_id}}", self._list, methods=["PUT", "GET", "DELETE"]),
                Route(f"{BASE}/largefacelists/{{list_id}}/persistedfaces", self._add_face, methods=["POST"]),
                Route(
                    f"{BASE}/largefacelists/{{list_id}}/persistedfaces/{{face_id}}",
                    self._delete_face,
                    methods=["DELETE"],
                ),
                Route(f"{BASE}/largefacelists/{{list_id}}/train", self._train, methods=["POST"]),
                Route(f"{BASE}/largefacelists/{{list_id}}/training", self._training, methods=["GET"]),
                Route(f"{BASE}/findsimilars", self._find_similar, methods=["POST"]),
            ]
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeAzureFace:
        """Serve (again) on the same port as before, or on a free one the first time."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Azure Face server did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread  # uvicorn closes the socket on shutdown
        return self

    def stop(self) -> None:
        """Take the server down (connections are refused until ``start()``); state is kept."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)

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

    # --- large face lists -------------------------------------------------------------------

    def _not_found(self, list_id: str) -> JSONResponse:
        return _error(404, "LargeFaceListNotFound", f"Large face list '{list_id}' is not found.")

    async def _list(self, request: Request) -> Response:
        list_id = request.path_params["list_id"]
        if request.method == "PUT":
            if refused := await self._gate("create_list", request):
                return refused
            body = await request.json()
            with self._lock:
                if list_id in self.lists:
                    return _error(409, "LargeFaceListExists", "Large Face List already exists.")
                self.lists[list_id] = FakeList(
                    list_id,
                    body.get("name") or list_id,
                    body.get("recognitionModel") or "recognition_01",
                    body.get("userData"),
                )
            return Response(status_code=200)
        if request.method == "DELETE":
            if refused := await self._gate("delete_list", request):
                return refused
            with self._lock:
                if self.lists.pop(list_id, None) is None:
                    return self._not_found(list_id)
            return Response(status_code=200)
        if refused := await self._gate("get_list", request):
            return refused
        with self._lock:
            lst = self.lists.get(list_id)
        if lst is None:
            return self._not_found(list_id)
        body = {"largeFaceListId": lst.list_id, "name": lst.name, "userData": lst.user_data}
        if request.query_params.get("returnRecognitionModel", "false").lower() == "true":
            body["recognitionModel"] = lst.recognition_model
        return JSONResponse(body)

    async def _add_face(self, request: Request) -> Response:
        if refused := await self._gate("add_face", request):
            return refused
        list_id = request.path_params["list_id"]
        data = await request.body()
        with self._lock:
            lst = self.lists.get(list_id)
        if lst is None:
            return self._not_found(list_id)
        try:
            seen = await run_in_threadpool(self._faces_in, data)
        except _Refused as exc:
            return exc.response
        target = request.query_params.get("targetFace")
        if target:
            try:
                left, top, width, height = (int(v) for v in target.split(","))
            except ValueError:
                return _error(400, "BadArgument", "Invalid argument targetFace.")
            box = FaceBox(left, top, left + width, top + height)
            scored = sorted(((box.iou(s.box), s) for s in seen), key=lambda item: -item[0])
            if not scored or scored[0][0] < 0.3:
                return _error(
                    400, "InvalidImage", "No face detected in the image or in the specified targetFace area."
                )
            face = scored[0][1]
        else:
            if not seen:
                return _error(400, "InvalidImage", "No face detected in the image.")
            if len(seen) > 1:
                return _error(400, "InvalidImage", "There is more than 1 face in the image.")
            face = seen[0]
        persisted = str(uuid.uuid4())
        with self._lock:
            lst.faces[persisted] = (face.descriptor, request.query_params.get("userData"))
            lst.last_action = _now()
        return JSONResponse({"persistedFaceId": persisted})

    async def _delete_face(self, request: Request) -> Response:
        if refused := await self._gate("delete_face", request):
            return refused
        list_id, face_id = request.path_params["list_id"], request.path_params["face_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            if lst.faces.pop(face_id, None) is None:
                return _error(404, "PersistedFaceNotFound", "Persisted face is not found.")
            lst.last_action = _now()
        return Response(status_code=200)

    async def _train(self, request: Request) -> Response:
        if refused := await self._gate("train", request):
            return refused
        list_id = request.path_params["list_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            lst.refresh()
            if lst.status == "running":
                return _error(
                    409,
                    "ConcurrentOperationConflict",
                    f"There is a conflict operation on resource {list_id}, please try later.",
                )
            lst._snapshot = {pid: desc for pid, (desc, _) in lst.faces.items()}
            lst._done_at = time.monotonic() + self.train_seconds
            lst.status = "running"
            lst.last_action = _now()
        return Response(status_code=202)

    async def _training(self, request: Request) -> Response:
        if refused := await self._gate("training_status", request):
            return refused
        list_id = request.path_params["list_id"]
        with self._lock:
            lst = self.lists.get(list_id)
            if lst is None:
                return self._not_found(list_id)
            lst.refresh()
            if lst.status == "nonstarted":
                return _error(404, "LargeFaceListNotTrained", f"Large face list '{list_id}' is not trained.")
            body = {
                "status": lst.status,
                "createdDateTime": lst.created,
                "lastActionDateTime": lst.last_action,
                "lastSuccessfulTrainingDateTime": lst.last_success,
                "message": None,
            }
        return JSONResponse(body)

    async def _find_similar(self, request: Request) -> Response:
        if refused := await self._gate("find_similar", request):
            return refused
        body = await request.json()
        face_id, list_id = body.get("faceId"), body.get("largeFaceListId")
        top = int(body.get("maxNumOfCandidatesReturned") or 20)
        mode = body.get("mode") or "matchPerson"
        if not list_id:
            return _error(400, "BadArgument", "Only largeFaceListId is supported by this fake.")
        with self._lock:
            probe = self.face_ids.get(face_id or "")
            lst = self.lists.get(list_id)
            if lst is not None:
                lst.refresh()
        if probe is None:
            return _error(404, "FaceNotFound", "Face is not found.")
        if lst is None:
            return self._not_found(list_id)
        if lst.trained is None:
            return _error(400, "LargeFaceListNotTrained", f"Large face list '{list_id}' is not trained.")
        if probe[1] != lst.recognition_model:
            return _error(400, "BadArgument", "'recognitionModel' is incompatible.")
        ranked = sorted(
            ((pid, confidence(probe[0], desc)) for pid, desc in lst.trained.items()),
            key=lambda item: -item[1],
        )
        if mode == "matchPerson":
            ranked = [(pid, c) for pid, c in ranked if c >= 0.5]
        return JSONResponse([{"persistedFaceId": pid, "confidence": round(c, 5)} for pid, c in ranked[:top]])


def jpeg(img: Any, quality: int = 92) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()
