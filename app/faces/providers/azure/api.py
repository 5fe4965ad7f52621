"""The Azure Face operations we use, each a request through :class:`Calls`: detect, large face
lists (create on first use, add a face, train and wait for the training), find-similar.

Azure runs one training at a time per list; a face added to a list is findable only once a
training that started after it succeeded, so every addition is followed by :meth:`train`.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.faces.providers.azure.calls import Calls, error_code, status_of
from app.faces.providers.azure.images import PreparedImage
from app.faces.providers.base import FaceBox, ProviderUnavailable

if TYPE_CHECKING:
    from azure.cognitiveservices.vision.face import FaceClient

log = logging.getLogger("app.faces.providers.azure")

#: Longest wait for a training to complete before the job is postponed.
TRAIN_TIMEOUT_SECONDS = 60.0
#: Most candidates find-similar may return (Azure's maximum).
MAX_CANDIDATES = 1000
#: How long Azure keeps a detected faceId; we only use them within minutes.
FACE_ID_TTL_SECONDS = 3600


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


class FaceApi:
    def __init__(
        self,
        *,
        client: FaceClient,
        calls: Calls,
        detection_model: str,
        recognition_model: str,
        train_timeout: float = TRAIN_TIMEOUT_SECONDS,
    ) -> None:
        self.client = client
        self.calls = calls
        self.detection_model = detection_model
        self.recognition_model = recognition_model
        self.train_timeout = train_timeout
        self._known_lists: set[str] = set()

    def detect(self, prepared: PreparedImage) -> list[AzureFace]:
        """Faces in the image, largest first (Azure's order)."""
        found = self.calls(
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

    def ensure_list(self, list_id: str) -> None:
        """Create the large face list if it does not exist (with our recognition model)."""
        if list_id in self._known_lists:
            return
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            existing = self.calls(
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
            if status_of(exc) != 404:
                raise
            try:
                self.calls(
                    "create list",
                    lambda: self.client.large_face_list.create(
                        list_id, name=list_id, recognition_model=self.recognition_model
                    ),
                )
                log.info("created Azure large face list %s (%s)", list_id, self.recognition_model)
            except APIErrorException as create_exc:
                if status_of(create_exc) != 409:  # created meanwhile by another worker: fine
                    raise
        self._known_lists.add(list_id)

    def add_face(
        self, list_id: str, prepared: PreparedImage, target: list[int], user_data: str
    ) -> str | None:
        """Add the face at ``target`` to the list; its persisted id, or None if Azure found no
        face there."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        for again in (False, True):
            self.ensure_list(list_id)
            try:
                persisted = self.calls(
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
                status, code = status_of(exc), error_code(exc)
                if status == 404 and not again:  # the list was deleted behind our back
                    self._known_lists.discard(list_id)
                    continue
                if status == 400 and code in ("InvalidImage", "InvalidImageSize", "NoFaceDetected"):
                    log.warning("Azure found no face to add at %s in %s: %s", target, list_id, exc)
                    return None
                raise
        return None  # pragma: no cover - the loop returns or raises

    def delete_face(self, list_id: str, persisted: str) -> None:
        """Delete a persisted face; one already gone (or its list) is fine."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            self.calls("delete_face", lambda: self.client.large_face_list.delete_face(list_id, persisted))
        except APIErrorException as exc:
            if status_of(exc) != 404:
                raise

    def delete_list(self, list_id: str) -> None:
        """Delete a large face list and every face in it; one already gone is fine."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            self.calls("delete list", lambda: self.client.large_face_list.delete(list_id))
        except APIErrorException as exc:
            if status_of(exc) != 404:
                raise
        self._known_lists.discard(list_id)

    def train(self, list_id: str) -> None:
        """Train the list and wait until a training that includes our changes succeeded.

        A ``train`` refused with 409 (one is running, which may have started before our faces
        were added) waits for the running one to end, then trains again; all within
        ``train_timeout``."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        deadline = time.monotonic() + self.train_timeout
        while True:
            try:
                self.calls("train", lambda: self.client.large_face_list.train(list_id))
                break
            except APIErrorException as exc:
                if status_of(exc) != 409 or time.monotonic() >= deadline:
                    raise
                log.info("a training of %s is already running: waiting for it, then training again", list_id)
                self._wait_training(list_id, deadline, final=False)
        self._wait_training(list_id, deadline, final=True)

    def _wait_training(self, list_id: str, deadline: float, *, final: bool) -> None:
        """Poll the training status until it is no longer running (backing off 20 ms to 1 s).
        ``final``: ours, which must have succeeded; else someone else's, whatever its end."""
        pause = 0.02
        while True:
            state = self.calls(
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

    def find_similar(self, face_id: str, list_id: str, *, min_confidence: float) -> list[tuple[str, float]]:
        """(persisted id, confidence) of the list's faces at least ``min_confidence`` similar;
        an absent or never-trained list has none."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        try:
            found = self.calls(
                "find similar",
                lambda: self.client.face.find_similar(
                    face_id,
                    large_face_list_id=list_id,
                    max_num_of_candidates_returned=MAX_CANDIDATES,
                    mode="matchFace",
                ),
            )
        except APIErrorException as exc:
            code = error_code(exc)
            if status_of(exc) == 404 or code in ("LargeFaceListNotFound", "LargeFaceListNotTrained"):
                log.debug("no trained list %s (%s)", list_id, code)
                return []
            raise
        return [
            (str(c.persisted_face_id), float(c.confidence))
            for c in found or []
            if c.persisted_face_id and c.confidence >= min_confidence
        ]
