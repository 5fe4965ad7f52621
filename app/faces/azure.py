"""Azure Face as the face provider (``FACE_PROVIDER=azure``).

Event photo faces go to a large face list per event (``event-{id}``), accepted selfies to one
deployment-wide list (``selfies``); a face's signature is its ``persistedFaceId``. Matching
is find-similar (``matchFace``), kept when ``confidence >= AZURE_FACE_MIN_CONFIDENCE``, with
``distance = 1 - confidence``. Every change is followed by a training, so whatever the
database records as matchable is matchable in Azure. Every request has a timeout, bounded
retries (``Retry-After`` honoured for 429) and a circuit breaker; when Azure cannot answer,
:class:`ProviderUnavailable` makes the job runner postpone the job without using an attempt.
The design and its limits are in docs/FACES.md ("Azure Face").
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import UnsupportedMediaType
from app.faces.engine import (
    FACE_TOO_SMALL_MESSAGE,
    MULTIPLE_FACES_MESSAGE,
    NO_FACE_MESSAGE,
    DetectedFace,
    FaceBox,
    LocalDlibEngine,
    SelfieAnalysis,
    SelfieRejected,
)
from app.faces.images import DEFAULT_MAX_PIXELS, downscale, load_rgb, probe_image
from app.faces.provider import GuestSelfie, PhotoMatch, ProviderUnavailable, SelfieMatch, StoredFace

if TYPE_CHECKING:
    from azure.cognitiveservices.vision.face import FaceClient

    from app.core.config import Settings

log = logging.getLogger("app.faces.azure")

T = TypeVar("T")

#: The deployment-wide large face list holding every accepted selfie.
SELFIE_LIST_ID = "selfies"
#: Longest wait for a training to complete before the job is postponed.
TRAIN_TIMEOUT_SECONDS = 60.0
#: Longest ``Retry-After`` slept inside a call; a longer one postpones the job instead.
MAX_RETRY_AFTER_SLEEP = 30.0
#: Azure's limits on an uploaded image.
AZURE_MAX_BYTES = 6 * 1024 * 1024
AZURE_MAX_SIDE = 4096
_AZURE_FORMATS = frozenset({"JPEG", "PNG"})
#: Most candidates find-similar may return (Azure's maximum).
MAX_CANDIDATES = 1000
#: How long Azure keeps a detected faceId; we only use them within minutes.
FACE_ID_TTL_SECONDS = 3600
#: How long this process reuses a faceId it detected (well below ``FACE_ID_TTL_SECONDS``).
FACE_ID_CACHE_SECONDS = 600.0

#: The shortest side a selfie face may have: the local engine's rule (see ``LocalDlibEngine``).
MIN_FACE_PX = LocalDlibEngine().min_face_px

QUALITY_LEVELS = {"low": 0, "medium": 1, "high": 2}
_LOW_QUALITY = (
    "The photo is not clear enough to recognise you. Face the camera in good light, "
    "hold the phone steady and try again."
)
_UNREADABLE = "The face service could not read this image. Upload a JPEG or PNG photo."


# --- circuit breaker ------------------------------------------------------------------------


class CircuitBreaker:
    """Consecutive-failure circuit breaker, thread-safe.

    ``closed``: calls go through; ``failure_threshold`` consecutive failures open it.
    ``open``: calls fail fast until ``reset_seconds`` have passed, then one trial call is let
    through (``half_open``); its success closes the circuit, its failure re-opens it.
    """

    def __init__(self, *, failure_threshold: int, reset_seconds: float) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.state = "closed"
        self.failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._lock = threading.Lock()

    def before_call(self) -> None:
        """Let a call through, or raise ``ProviderUnavailable`` when the circuit is open."""
        with self._lock:
            if self.state == "closed":
                return
            now = time.monotonic()
            if self.state == "open":
                remaining = self._opened_at + self.reset_seconds - now
                if remaining > 0:
                    raise ProviderUnavailable(
                        "Azure Face is failing; calls are paused (circuit open).",
                        retry_after=max(1.0, remaining),
                    )
                self.state = "half_open"
                self._trial_in_flight = False
            if self._trial_in_flight:
                raise ProviderUnavailable(
                    "Azure Face is being probed after failures (circuit half-open).",
                    retry_after=max(1.0, min(self.reset_seconds, 5.0)),
                )
            self._trial_in_flight = True
            log.info("Azure Face circuit half-open: trying one call")

    def record_success(self) -> None:
        with self._lock:
            if self.state != "closed":
                log.warning("Azure Face circuit closed: the service answers again")
            self.state = "closed"
            self.failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            self._trial_in_flight = False
            if self.state == "half_open" or (
                self.state == "closed" and self.failures >= self.failure_threshold
            ):
                self.state = "open"
                self._opened_at = time.monotonic()
                log.error(
                    "Azure Face circuit open after %d consecutive failures: failing fast for %.1f s",
                    self.failures,
                    self.reset_seconds,
                )

    def record_neutral(self) -> None:
        """The call ended without telling whether the service is healthy (e.g. throttled)."""
        with self._lock:
            self._trial_in_flight = False

    def reset(self) -> None:
        with self._lock:
            self.state = "closed"
            self.failures = 0
            self._trial_in_flight = False


# --- small helpers --------------------------------------------------------------------------


class _RecentIds:
    """A bounded, thread-safe map with expiry: persisted face id -> faceId (str -> str)."""

    def __init__(self, *, ttl: float, max_items: int = 4096) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._items[key] = (value, time.monotonic() + self.ttl)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[1] < time.monotonic():
                del self._items[key]
                return None
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The bytes sent to Azure and the factor mapping their pixels back to the original's."""

    data: bytes
    factor: float = 1.0


@dataclass(frozen=True, slots=True)
class AzureFace:
    """A face Azure detected: its faceId, rectangle (in the sent image), and quality."""

    face_id: str
    left: int
    top: int
    width: int
    height: int
    quality: str  # low | medium | high ("" when not reported)

    @property
    def target(self) -> list[int]:
        return [self.left, self.top, self.width, self.height]

    def box(self, factor: float, width: int, height: int) -> FaceBox:
        """The rectangle in pixels of the upright original image (clipped to it)."""
        return FaceBox(
            left=max(0, round(self.left * factor)),
            top=max(0, round(self.top * factor)),
            right=min(width, round((self.left + self.width) * factor)),
            bottom=min(height, round((self.top + self.height) * factor)),
        )


def _orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "PNG" and "exif" not in im.info:
                return 1
            value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def prepare_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PreparedImage, int, int]:
    """What to send Azure for ``data``, and the upright original's width and height.

    Raises ``UnsupportedMediaType`` / ``PayloadTooLarge`` like :mod:`app.faces.images`.
    """
    info = probe_image(data, max_pixels=max_pixels)
    if (
        info.format in _AZURE_FORMATS
        and len(data) <= AZURE_MAX_BYTES
        and max(info.width, info.height) <= AZURE_MAX_SIDE
        and _orientation(data) == 1
    ):
        return PreparedImage(data), info.width, info.height
    img = load_rgb(data, max_pixels=max_pixels)
    side = AZURE_MAX_SIDE
    while True:
        small, factor = downscale(img, max_side=side)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=90)
        if out.tell() <= AZURE_MAX_BYTES or side <= 512:
            return PreparedImage(out.getvalue(), factor), info.width, info.height
        side = int(side * 0.75)


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _error_code(exc: Exception) -> str:
    error = getattr(getattr(exc, "error", None), "error", None)
    return str(getattr(error, "code", "") or "")


def _retry_after(exc: Exception, default: float = 1.0) -> float:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


# --- the provider ---------------------------------------------------------------------------


class AzureProvider:
    """Azure Face through the official SDK (msrest ``FaceClient``); see the module docstring."""

    name = "azure"

    def __init__(
        self,
        *,
        endpoint: str,
        key: str,
        timeout: float = 10.0,
        max_retries: int = 3,
        min_quality: str = "medium",
        min_confidence: float = 0.5,
        circuit_failures: int = 5,
        circuit_reset_seconds: float = 30.0,
        detection_model: str = "detection_03",
        recognition_model: str = "recognition_04",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        train_timeout: float = TRAIN_TIMEOUT_SECONDS,
        list_prefix: str = "",
        client: FaceClient | None = None,
    ) -> None:
        if min_quality not in QUALITY_LEVELS:
            raise ValueError(f"min_quality must be one of {sorted(QUALITY_LEVELS)}")
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.min_quality = min_quality
        self.min_confidence = min_confidence
        self.detection_model = detection_model
        self.recognition_model = recognition_model
        self.max_pixels = max_pixels
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.train_timeout = train_timeout
        self.breaker = CircuitBreaker(failure_threshold=circuit_failures, reset_seconds=circuit_reset_seconds)
        self.client = client or self._make_client(self.endpoint, key, timeout)
        self.list_prefix = list_prefix
        self.selfie_list = f"{list_prefix}{SELFIE_LIST_ID}"
        self._known_lists: set[str] = set()
        self._face_ids = _RecentIds(ttl=FACE_ID_CACHE_SECONDS)

    def event_list(self, event_id: int) -> str:
        return f"{self.list_prefix}event-{event_id}"

    def forget_selfie(self, signature: bytes) -> None:
        """Delete a replaced selfie's face from the selfie list (best effort: if Azure is
        unavailable the face stays there, unused: matching ignores unknown ids)."""
        persisted = signature.decode()
        try:
            self._call(
                "delete_face", lambda: self.client.large_face_list.delete_face(self.selfie_list, persisted)
            )
        except ProviderUnavailable as exc:
            log.warning("could not delete replaced selfie face %s from Azure: %s", persisted, exc.message)

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureProvider:
        return cls(
            endpoint=settings.azure_face_endpoint,
            key=settings.azure_face_key,
            timeout=settings.azure_face_timeout,
            max_retries=settings.azure_face_max_retries,
            min_quality=settings.azure_face_min_quality,
            min_confidence=settings.azure_face_min_confidence,
            circuit_failures=settings.azure_face_circuit_failures,
            circuit_reset_seconds=settings.azure_face_circuit_reset_seconds,
            detection_model=settings.azure_face_detection_model,
            recognition_model=settings.azure_face_recognition_model,
            max_pixels=settings.max_image_pixels,
            list_prefix=settings.azure_face_list_prefix,
        )

    @staticmethod
    def _make_client(endpoint: str, key: str, timeout: float) -> FaceClient:
        from azure.cognitiveservices.vision.face import FaceClient
        from msrest.authentication import CognitiveServicesCredentials

        client = FaceClient(endpoint, CognitiveServicesCredentials(key))
        client.config.connection.timeout = timeout  # type: ignore[assignment]  # msrest accepts floats
        # msrest gives its sessions a urllib3 Retry (3 retries; every 5xx and 429 retried, then
        # raised as RetryError). Mutated in place, since the session msrest already created for
        # this thread holds that very object: no retries, every status returned as it is, so
        # that _call owns retries and sees each status and Retry-After.
        retry = client.config.retry_policy
        retry.retries = 0
        retry.policy.status = 0
        retry.policy.redirect = 0
        retry.policy.status_forcelist = frozenset()
        retry.policy.raise_on_status = False
        retry.policy.respect_retry_after_header = False
        return client

    def __repr__(self) -> str:
        return (
            f"AzureProvider(endpoint={self.endpoint!r}, detection={self.detection_model}, "
            f"recognition={self.recognition_model}, timeout={self.timeout}, retries={self.max_retries})"
        )

    def load_models(self) -> None:
        """Nothing to load: the models run in Azure (kept for the worker's start-up hook)."""

    # --- the one wrapper around every request ---------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(random.uniform(0.5, 1.0) * min(self.backoff_max, self.backoff_base * 2**attempt))

    def _call(self, what: str, request: Callable[[], T]) -> T:
        """Run one SDK request with timeout, retries, Retry-After and the circuit breaker.

        ``request`` is called once per attempt (so it must build fresh streams). Returns its
        result or raises: ``ProviderUnavailable`` (retries exhausted, circuit open, key
        refused), ``UnsupportedMediaType`` (Azure cannot read the image), or the SDK's
        ``APIErrorException`` for any other 4xx (the caller decides).
        """
        from azure.cognitiveservices.vision.face.models import APIErrorException
        from msrest.exceptions import ClientRequestError

        attempt = 0
        while True:
            self.breaker.before_call()
            started = time.monotonic()
            try:
                result = request()
            except APIErrorException as exc:
                status = _status(exc) or 0
                code = _error_code(exc)
                if status == 429:
                    self.breaker.record_neutral()
                    wait = _retry_after(exc)
                    if attempt >= self.max_retries or wait > MAX_RETRY_AFTER_SLEEP:
                        log.warning(
                            "Azure Face %s throttled (429); giving up after %d tries", what, attempt + 1
                        )
                        raise ProviderUnavailable(
                            "Azure Face is throttling requests.", retry_after=max(1.0, wait)
                        ) from exc
                    log.warning("Azure Face %s throttled (429): retrying in %.2f s (Retry-After)", what, wait)
                    time.sleep(wait)
                    attempt += 1
                    continue
                last: Exception = exc
                if status >= 500 or status == 408:
                    self.breaker.record_failure()
                    reason = f"HTTP {status} {code}".strip()
                elif status in (401, 403):
                    self.breaker.record_failure()
                    log.error(
                        "Azure Face refused the request (%s %s): check AZURE_FACE_KEY, AZURE_FACE_ENDPOINT "
                        "and that the resource is approved for identification features",
                        status,
                        code,
                    )
                    raise ProviderUnavailable(
                        f"Azure Face refused our credentials ({status}).",
                        retry_after=self.breaker.reset_seconds,
                    ) from exc
                else:
                    self.breaker.record_success()  # the service answered: it is up
                    if status == 400 and code in ("InvalidImage", "InvalidImageSize") and what == "detect":
                        raise UnsupportedMediaType(_UNREADABLE, code="unsupported_format") from exc
                    raise
            except ClientRequestError as exc:
                self.breaker.record_failure()
                inner = getattr(exc, "inner_exception", None) or exc
                reason = f"{type(inner).__name__} after {time.monotonic() - started:.2f} s"
                last = exc
            except BaseException:
                self.breaker.record_neutral()
                raise
            else:
                self.breaker.record_success()
                return result
            if attempt >= self.max_retries:
                log.error("Azure Face %s failed (%s); %d tries used", what, reason, attempt + 1)
                raise ProviderUnavailable(
                    f"Azure Face did not answer {what} ({reason}).", retry_after=self.breaker.reset_seconds
                ) from last
            delay = self._backoff(attempt)
            log.warning(
                "Azure Face %s failed (%s): retry %d/%d in %.2f s",
                what,
                reason,
                attempt + 1,
                self.max_retries,
                delay,
            )
            time.sleep(delay)
            attempt += 1

    # --- Azure operations ------------------------------------------------------------------

    def _detect(self, prepared: PreparedImage) -> list[AzureFace]:
        """Faces in the image, largest first (Azure's order)."""
        found = self._call(
            "detect",
            lambda: self.client.face.detect_with_stream(
                io.BytesIO(prepared.data),
                return_face_id=True,
                return_face_landmarks=False,
                return_face_attributes=["qualityForRecognition"],
                recognition_model=self.recognition_model,
                return_recognition_model=False,
                detection_model=self.detection_model,
                face_id_time_to_live=FACE_ID_TTL_SECONDS,
            ),
        )
        faces = []
        for f in found or []:
            rect = f.face_rectangle
            quality = getattr(f.face_attributes, "quality_for_recognition", None)
            faces.append(
                AzureFace(
                    face_id=f.face_id,
                    left=rect.left,
                    top=rect.top,
                    width=rect.width,
                    height=rect.height,
                    quality=str(getattr(quality, "value", quality) or "").lower(),
                )
            )
        return faces

    def _ensure_list(self, list_id: str) -> None:
        """Create the large face list if it does not exist (with our recognition model)."""
        if list_id in self._known_lists:
            return
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            existing = self._call(
                "get list",
                lambda: self.client.large_face_list.get(list_id, return_recognition_model=True),
            )
            model = getattr(existing, "recognition_model", None)
            if model and str(getattr(model, "value", model)) != self.recognition_model:
                log.error(
                    "large face list %s uses %s, not the configured %s: its faces cannot be matched",
                    list_id,
                    model,
                    self.recognition_model,
                )
        except APIErrorException as exc:
            if _status(exc) != 404:
                raise
            try:
                self._call(
                    "create list",
                    lambda: self.client.large_face_list.create(
                        list_id, name=list_id, recognition_model=self.recognition_model
                    ),
                )
                log.info("created Azure large face list %s (%s)", list_id, self.recognition_model)
            except APIErrorException as create_exc:
                if _status(create_exc) != 409:  # created meanwhile by another worker: fine
                    raise
        self._known_lists.add(list_id)

    def _add_face(
        self, list_id: str, prepared: PreparedImage, target: list[int], user_data: str
    ) -> str | None:
        """Add the face at ``target`` to the list; its persisted id, or None if Azure found no
        face there."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        for again in (False, True):
            self._ensure_list(list_id)
            try:
                persisted = self._call(
                    "add face",
                    lambda: self.client.large_face_list.add_face_from_stream(
                        list_id,
                        io.BytesIO(prepared.data),
                        user_data=user_data,
                        target_face=target,
                        detection_model=self.detection_model,
                    ),
                )
                return str(persisted.persisted_face_id)
            except APIErrorException as exc:
                status, code = _status(exc), _error_code(exc)
                if status == 404 and not again:  # the list was deleted behind our back
                    self._known_lists.discard(list_id)
                    continue
                if status == 400 and code in ("InvalidImage", "InvalidImageSize", "NoFaceDetected"):
                    log.warning("Azure found no face to add at %s in %s: %s", target, list_id, exc)
                    return None
                raise
        return None  # pragma: no cover - the loop returns or raises

    def _train(self, list_id: str) -> None:
        """Train the list and wait until a training that includes our changes succeeded.

        Azure runs one training at a time per list: a ``train`` refused with 409 (one is
        running, which may have started before our faces were added) waits for the running
        one to end, then trains again; all within ``train_timeout``."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        deadline = time.monotonic() + self.train_timeout
        while True:
            try:
                self._call("train", lambda: self.client.large_face_list.train(list_id))
                break
            except APIErrorException as exc:
                if _status(exc) != 409 or time.monotonic() >= deadline:
                    raise
                log.info("a training of %s is already running: waiting for it, then training again", list_id)
                self._wait_training(list_id, deadline, final=False)
        self._wait_training(list_id, deadline, final=True)

    def _wait_training(self, list_id: str, deadline: float, *, final: bool) -> None:
        """Poll the training status until it is no longer running (backing off 20 ms to 1 s).
        ``final``: ours, which must have succeeded; else someone else's, whatever its end."""
        pause = 0.02
        while True:
            state = self._call(
                "training status", lambda: self.client.large_face_list.get_training_status(list_id)
            )
            status = str(getattr(state.status, "value", state.status))
            if status == "succeeded" or (status == "failed" and not final):
                return
            if status == "failed":
                log.error("training of %s failed: %s", list_id, state.message)
                raise ProviderUnavailable(f"Azure Face could not train {list_id}: {state.message}")
            if time.monotonic() + pause > deadline:
                raise ProviderUnavailable(
                    f"Azure Face is still training {list_id} after {self.train_timeout:.0f} s.",
                    retry_after=30.0,
                )
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    def _find_similar(self, face_id: str, list_id: str) -> list[tuple[str, float]]:
        """(persisted id, confidence) of the list's faces at least ``min_confidence`` similar;
        an absent or never-trained list has none."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            found = self._call(
                "find similar",
                lambda: self.client.face.find_similar(
                    face_id,
                    large_face_list_id=list_id,
                    max_num_of_candidates_returned=MAX_CANDIDATES,
                    mode="matchFace",
                ),
            )
        except APIErrorException as exc:
            code = _error_code(exc)
            if _status(exc) == 404 or code in ("LargeFaceListNotFound", "LargeFaceListNotTrained"):
                log.debug("no trained list %s (%s)", list_id, code)
                return []
            raise
        return [
            (str(c.persisted_face_id), float(c.confidence))
            for c in found or []
            if c.persisted_face_id and c.confidence >= self.min_confidence
        ]

    # --- FaceProvider ----------------------------------------------------------------------

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        prepared, width, height = prepare_image(data, max_pixels=self.max_pixels)
        faces = self._detect(prepared)
        if not faces:
            raise SelfieRejected(NO_FACE_MESSAGE, code="no_face")
        if strict and len(faces) > 1:
            raise SelfieRejected(
                MULTIPLE_FACES_MESSAGE.format(count=len(faces)), code="multiple_faces", faces_found=len(faces)
            )
        face = max(faces, key=lambda f: f.width * f.height)
        box = face.box(prepared.factor, width, height)
        # A detection model without the attribute (detection_02) reports no quality: not checked.
        level = QUALITY_LEVELS.get(face.quality, QUALITY_LEVELS["high"])
        quality = {"face_px": float(min(box.width, box.height)), "quality_for_recognition": float(level)}
        if strict:
            if quality["face_px"] < MIN_FACE_PX:
                raise SelfieRejected(FACE_TOO_SMALL_MESSAGE, code="face_too_small")
            if level < QUALITY_LEVELS[self.min_quality]:
                raise SelfieRejected(_LOW_QUALITY, code="low_quality")
        return SelfieAnalysis(
            face=DetectedFace(box=box, ref=face.face_id), faces_found=len(faces), quality=quality
        )

    def selfie_signature(self, analysis: SelfieAnalysis, *, selfie_id: int, image: bytes) -> bytes:
        """Enrol the selfie's face in the ``selfies`` list, train it; the persisted face id."""
        prepared, _, _ = prepare_image(image, max_pixels=self.max_pixels)
        box, f = analysis.face.box, prepared.factor
        target = [
            round(box.left / f),
            round(box.top / f),
            max(1, round(box.width / f)),
            max(1, round(box.height / f)),
        ]
        persisted = self._add_face(self.selfie_list, prepared, target, user_data=str(selfie_id))
        if persisted is None:
            raise SelfieRejected(NO_FACE_MESSAGE, code="no_face")
        self._train(self.selfie_list)
        if analysis.face.ref:
            self._face_ids.put(persisted, analysis.face.ref)
        log.info("selfie %s enrolled as %s", selfie_id, persisted)
        return persisted.encode()

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:
        prepared, width, height = prepare_image(data, max_pixels=self.max_pixels)
        found = self._detect(prepared)
        if not found:
            return []
        list_id = self.event_list(event_id)
        faces: list[DetectedFace] = []
        for face in sorted(found, key=lambda f: (f.left, f.top)):
            persisted = self._add_face(list_id, prepared, face.target, user_data=f"event {event_id}")
            if persisted is None:
                continue
            self._face_ids.put(persisted, face.face_id)
            faces.append(DetectedFace(box=face.box(prepared.factor, width, height), ref=persisted))
        if faces:
            self._train(list_id)
        return faces

    def face_signature(self, face: DetectedFace) -> bytes:
        if not face.ref:
            raise ValueError("an Azure face needs its persisted face id")
        return face.ref.encode()

    def find_photos(
        self, *, session: Session, signature: bytes, image: Callable[[], bytes], event_ids: Sequence[int]
    ) -> list[PhotoMatch]:
        from app.faces.models import Face

        if not event_ids:
            return []
        face_id = self._face_ids.get(signature.decode())
        if face_id is None:
            prepared, _, _ = prepare_image(image(), max_pixels=self.max_pixels)
            faces = self._detect(prepared)
            if not faces:
                log.warning("no face found again in selfie %s; no matches", signature.decode())
                return []
            face_id = max(faces, key=lambda f: f.width * f.height).face_id
        matches: list[PhotoMatch] = []
        for event_id in event_ids:
            candidates = dict(self._find_similar(face_id, self.event_list(event_id)))
            if not candidates:
                continue
            rows = session.execute(
                select(Face.id, Face.photo_id, Face.descriptor).where(
                    Face.event_id == event_id,
                    Face.provider == self.name,
                    Face.descriptor.in_([pid.encode() for pid in candidates]),
                )
            ).all()
            best: dict[int, PhotoMatch] = {}
            for row in rows:
                distance = 1.0 - candidates[bytes(row.descriptor).decode()]
                if row.photo_id not in best or distance < best[row.photo_id].distance:
                    best[row.photo_id] = PhotoMatch(row.id, row.photo_id, event_id, distance)
            matches.extend(best.values())
        return matches

    def find_selfies(
        self, *, faces: Sequence[StoredFace], image: Callable[[], bytes], selfies: Sequence[GuestSelfie]
    ) -> list[SelfieMatch]:
        if not faces or not selfies:
            return []
        face_ids = self._photo_face_ids(faces, image)
        wanted = {bytes(s.signature).decode(): s for s in selfies}
        best: dict[int, SelfieMatch] = {}
        for stored in faces:
            face_id = face_ids.get(stored.face_id)
            if face_id is None:
                continue
            for persisted, confidence in self._find_similar(face_id, self.selfie_list):
                selfie = wanted.get(persisted)
                if selfie is None:
                    continue
                distance = 1.0 - confidence
                if selfie.selfie_id not in best or distance < best[selfie.selfie_id].distance:
                    best[selfie.selfie_id] = SelfieMatch(
                        selfie.selfie_id, selfie.user_id, stored.face_id, distance
                    )
        return list(best.values())

    def _photo_face_ids(self, faces: Sequence[StoredFace], image: Callable[[], bytes]) -> dict[int, str]:
        """A current faceId for each stored face (our face id -> faceId): from the cache
        filled by ``index_photo``, else by detecting the photo again and pairing the faces
        with the stored boxes (the same detector gives the same rectangles)."""
        ids: dict[int, str] = {}
        missing: list[StoredFace] = []
        for stored in faces:
            cached = self._face_ids.get(bytes(stored.signature).decode())
            if cached:
                ids[stored.face_id] = cached
            else:
                missing.append(stored)
        if not missing:
            return ids
        prepared, width, height = prepare_image(image(), max_pixels=self.max_pixels)
        detected = [(f, f.box(prepared.factor, width, height)) for f in self._detect(prepared)]
        for stored in missing:
            scored = [(stored.box.iou(box), f) for f, box in detected]
            if not scored:
                break
            overlap, face = max(scored, key=lambda item: item[0])
            if overlap >= 0.5:
                ids[stored.face_id] = face.face_id
            else:
                log.warning("face %s was not found again in its photo; not matched", stored.face_id)
        return ids

    def forget_cached_face_ids(self) -> None:
        """Drop the in-process faceId cache (tests; or after a long pause)."""
        self._face_ids.clear()
