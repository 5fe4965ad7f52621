"""``AzureProvider``: the :class:`FaceProvider` contract on top of :class:`FaceApi`.

A photo face's signature is its ``persistedFaceId`` in the event's list; an accepted
selfie's, in the deployment-wide ``selfies`` list. Matching is find-similar, kept when
``confidence >= AZURE_FACE_MIN_CONFIDENCE``, with ``distance = 1 - confidence``. Detected
faceIds are cached for 10 minutes (Azure keeps them an hour), so a photo's matching right
after its indexing needs no second detection.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from cachetools import TTLCache
from PIL import Image

from app.faces.images import DEFAULT_MAX_PIXELS
from app.faces.providers.azure.api import FaceApi
from app.faces.providers.azure.calls import Calls, make_client
from app.faces.providers.azure.images import prepare_image
from app.faces.providers.base import (
    FACE_TOO_SMALL_MESSAGE,
    MIN_SELFIE_FACE_PX,
    MULTIPLE_FACES_MESSAGE,
    NO_FACE_MESSAGE,
    DetectedFace,
    FaceLookup,
    GuestSelfies,
    PhotoMatch,
    SelfieAnalysis,
    SelfieMatch,
    SelfieRejected,
    StoredFace,
)

if TYPE_CHECKING:
    import pybreaker
    from azure.cognitiveservices.vision.face import FaceClient

    from app.core.config import Settings

log = logging.getLogger("app.faces.providers.azure")

#: The deployment-wide large face list holding every accepted selfie.
SELFIE_LIST_ID = "selfies"
#: How long this process reuses a faceId it detected (well below Azure's hour).
FACE_ID_CACHE_SECONDS = 600.0

QUALITY_LEVELS = {"low": 0, "medium": 1, "high": 2}
_LOW_QUALITY = (
    "The photo is not clear enough to recognise you. Face the camera in good light, "
    "hold the phone steady and try again."
)


class AzureProvider:
    """Azure Face through the official SDK (msrest ``FaceClient``); see the package docstring."""

    name = "azure"
    # A signature is a persisted face of a list of this resource: the model is the provider's.
    model = "azure"

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
        list_prefix: str = "",
        client: FaceClient | None = None,
    ) -> None:
        if min_quality not in QUALITY_LEVELS:
            raise ValueError(f"min_quality must be one of {sorted(QUALITY_LEVELS)}")
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.min_quality = min_quality
        self.min_confidence = min_confidence
        self.max_pixels = max_pixels
        self.calls = Calls(
            max_retries=max_retries,
            circuit_failures=circuit_failures,
            circuit_reset_seconds=circuit_reset_seconds,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self.api = FaceApi(
            client=client or make_client(self.endpoint, key, timeout),
            calls=self.calls,
            detection_model=detection_model,
            recognition_model=recognition_model,
        )
        self.list_prefix = list_prefix
        self.selfie_list = f"{list_prefix}{SELFIE_LIST_ID}"
        self._face_ids: TTLCache[str, str] = TTLCache(maxsize=4096, ttl=FACE_ID_CACHE_SECONDS)
        self._face_ids_lock = threading.Lock()

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

    def __repr__(self) -> str:
        return (
            f"AzureProvider(endpoint={self.endpoint!r}, detection={self.api.detection_model}, "
            f"recognition={self.api.recognition_model}, timeout={self.timeout}, "
            f"retries={self.calls.max_retries})"
        )

    @property
    def breaker(self) -> pybreaker.CircuitBreaker:
        return self.calls.breaker

    @property
    def client(self) -> FaceClient:
        return self.api.client

    def event_list(self, event_id: int) -> str:
        return f"{self.list_prefix}event-{event_id}"

    def load_models(self) -> None:
        """Nothing to load: the models run in Azure."""

    # --- FaceProvider ----------------------------------------------------------------------

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        prepared, width, height = prepare_image(data, max_pixels=self.max_pixels)
        faces = self.api.detect(prepared)
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
            if quality["face_px"] < MIN_SELFIE_FACE_PX:
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
        persisted = self.api.add_face(self.selfie_list, prepared, target, user_data=str(selfie_id))
        if persisted is None:
            raise SelfieRejected(NO_FACE_MESSAGE, code="no_face")
        self.api.train(self.selfie_list)
        if analysis.face.ref:
            self._remember(persisted, analysis.face.ref)
        log.info("selfie %s enrolled as %s", selfie_id, persisted)
        return persisted.encode()

    def forget_selfie(self, signature: bytes) -> None:
        """Delete a selfie's face from the selfie list, and train it so find-similar no longer
        sees it. Raises ``ProviderUnavailable`` when Azure cannot answer (the erasure job
        retries)."""
        self.api.delete_face(self.selfie_list, signature.decode())
        self.api.train(self.selfie_list)

    def forget_faces(self, *, event_id: int, signatures: Sequence[bytes]) -> None:
        list_id = self.event_list(event_id)
        for signature in signatures:
            self.api.delete_face(list_id, signature.decode())
        if signatures:
            self.api.train(list_id)

    def forget_event(self, event_id: int) -> None:
        self.api.delete_list(self.event_list(event_id))

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:
        prepared, width, height = prepare_image(data, max_pixels=self.max_pixels)
        found = self.api.detect(prepared)
        if not found:
            return []
        list_id = self.event_list(event_id)
        faces: list[DetectedFace] = []
        for face in sorted(found, key=lambda f: (f.left, f.top)):
            persisted = self.api.add_face(list_id, prepared, face.target, user_data=f"event {event_id}")
            if persisted is None:
                continue
            self._remember(persisted, face.face_id)
            faces.append(DetectedFace(box=face.box(prepared.factor, width, height), ref=persisted))
        if faces:
            self.api.train(list_id)
        return faces

    def index_image(self, img: Image.Image, *, event_id: int) -> list[DetectedFace]:
        """:meth:`index_photo` of a decoded photo (sent as a JPEG)."""
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=92)
        return self.index_photo(buffer.getvalue(), event_id=event_id)

    def face_signature(self, face: DetectedFace) -> bytes:
        if not face.ref:
            raise ValueError("an Azure face needs its persisted face id")
        return face.ref.encode()

    def find_photos(
        self,
        *,
        signature: bytes,
        image: Callable[[], bytes],
        event_ids: Sequence[int],
        faces: FaceLookup,
        exclude_photos: Collection[int] = (),
    ) -> list[PhotoMatch]:
        if not event_ids:
            return []
        face_id = self._recall(signature.decode())
        if face_id is None:
            prepared, _, _ = prepare_image(image(), max_pixels=self.max_pixels)
            detected = self.api.detect(prepared)
            if not detected:
                log.warning("no face found again in selfie %s; no matches", signature.decode())
                return []
            face_id = max(detected, key=lambda f: f.width * f.height).face_id
        matches: list[PhotoMatch] = []
        for event_id in event_ids:
            candidates = dict(
                self.api.find_similar(face_id, self.event_list(event_id), min_confidence=self.min_confidence)
            )
            if not candidates:
                continue
            best: dict[int, PhotoMatch] = {}
            for ref in faces.with_signatures(event_id, [pid.encode() for pid in candidates]):
                if ref.photo_id in exclude_photos:
                    continue
                distance = 1.0 - candidates[bytes(ref.signature).decode()]
                if ref.photo_id not in best or distance < best[ref.photo_id].distance:
                    best[ref.photo_id] = PhotoMatch(ref.face_id, ref.photo_id, event_id, distance)
            matches.extend(best.values())
        return matches

    def rematch_candidates(self, *, faces: Sequence[StoredFace], selfies: GuestSelfies) -> list[int]:  # noqa: ARG002 - the FaceProvider protocol
        """None: Azure's find-similar is not gallery-aware."""
        return []

    def find_selfies(
        self, *, faces: Sequence[StoredFace], image: Callable[[], bytes], selfies: GuestSelfies
    ) -> list[SelfieMatch]:
        if not faces or not selfies:
            return []
        face_ids = self._photo_face_ids(faces, image)
        wanted = {selfies.signature(i).decode(): i for i in range(len(selfies))}
        best: dict[int, SelfieMatch] = {}
        for stored in faces:
            face_id = face_ids.get(stored.face_id)
            if face_id is None:
                continue
            for persisted, confidence in self.api.find_similar(
                face_id, self.selfie_list, min_confidence=self.min_confidence
            ):
                row = wanted.get(persisted)
                if row is None:
                    continue
                selfie_id, distance = int(selfies.selfie_ids[row]), 1.0 - confidence
                if selfie_id not in best or distance < best[selfie_id].distance:
                    best[selfie_id] = SelfieMatch(
                        selfie_id, int(selfies.user_ids[row]), stored.face_id, distance
                    )
        return list(best.values())

    def _photo_face_ids(self, faces: Sequence[StoredFace], image: Callable[[], bytes]) -> dict[int, str]:
        """A current faceId for each stored face (our face id -> faceId): from the cache
        filled by ``index_photo``, else by detecting the photo again and pairing the faces
        with the stored boxes (the same detector gives the same rectangles)."""
        ids: dict[int, str] = {}
        missing: list[StoredFace] = []
        for stored in faces:
            cached = self._recall(bytes(stored.signature).decode())
            if cached:
                ids[stored.face_id] = cached
            else:
                missing.append(stored)
        if not missing:
            return ids
        prepared, width, height = prepare_image(image(), max_pixels=self.max_pixels)
        detected = [(f, f.box(prepared.factor, width, height)) for f in self.api.detect(prepared)]
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

    def _remember(self, persisted: str, face_id: str) -> None:
        with self._face_ids_lock:
            self._face_ids[persisted] = face_id

    def _recall(self, persisted: str) -> str | None:
        with self._face_ids_lock:
            return self._face_ids.get(persisted)
