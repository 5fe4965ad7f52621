"""Face providers: what the photo and selfie services need, whoever computes the faces.

A provider checks selfies, finds the faces of event photos, and finds matches both ways
(a selfie's photos; a new photo's selfies). ``LocalProvider`` is dlib on this machine,
offline, with matching done in numpy on descriptors stored in our database.
``AzureProvider`` (``app.faces.azure``) is Azure Face, where matching is Azure's
find-similar. Services store whatever ``*_signature`` the provider returns and never
look inside it, so a third provider plugs in here without touching services or routes.

``build_provider()`` is called once per face-worker process; web processes never call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.faces.engine import DetectedFace, FaceBox, SelfieAnalysis
from app.faces.matching import from_blob, match_many, to_blob
from app.jobs.kinds import Postpone


class ProviderUnavailable(Postpone):
    """The provider cannot answer now (down, throttling, circuit open). The job is kept and
    retried later, without using up its attempts: nothing accepted is lost."""

    def __init__(self, message: str, *, retry_after: float = 30.0) -> None:
        super().__init__(
            f"The face service is unavailable; this will be processed automatically. ({message})",
            code="provider_unavailable",
            retry_after=retry_after,
        )
        self.reason = message


@dataclass(frozen=True)
class PhotoMatch:
    face_id: int
    photo_id: int
    event_id: int
    distance: float


@dataclass(frozen=True)
class SelfieMatch:
    selfie_id: int
    user_id: int
    face_id: int
    distance: float


@dataclass(frozen=True)
class StoredFace:
    """A photo face as the database keeps it."""

    face_id: int
    box: FaceBox
    signature: bytes


@dataclass(frozen=True)
class GuestSelfie:
    selfie_id: int
    user_id: int
    signature: bytes


@runtime_checkable
class FaceProvider(Protocol):
    name: str

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        """The guest's face in a selfie, or ``SelfieRejected`` with an actionable reason."""
        ...

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:
        """Every face of an event photo (possibly none)."""
        ...

    def face_signature(self, face: DetectedFace) -> bytes:
        """What the database keeps for a photo face (``faces.descriptor``)."""
        ...

    def selfie_signature(self, analysis: SelfieAnalysis, *, selfie_id: int, image: bytes) -> bytes:
        """What the database keeps for an accepted selfie (``selfies.descriptor``)."""
        ...

    def forget_selfie(self, signature: bytes) -> None:
        """A selfie was replaced: drop whatever the provider keeps of it (best effort)."""
        ...

    def find_photos(
        self, *, session: Session, signature: bytes, image: Callable[[], bytes], event_ids: Sequence[int]
    ) -> list[PhotoMatch]:
        """The event faces matching a selfie: the best face per photo."""
        ...

    def find_selfies(
        self, *, faces: Sequence[StoredFace], image: Callable[[], bytes], selfies: Sequence[GuestSelfie]
    ) -> list[SelfieMatch]:
        """The guests' selfies matching the faces of a new photo (``image`` loads the photo,
        for a provider that needs it again): the best face per selfie."""
        ...


class LocalProvider:
    """dlib on this machine; matching in numpy against the descriptors in the database."""

    name = "local"

    def __init__(self, *, threshold: float, max_pixels: int) -> None:
        from app.faces.engine import LocalDlibEngine

        self.engine = LocalDlibEngine(max_pixels=max_pixels)
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"LocalProvider(threshold={self.threshold}, engine={self.engine!r})"

    def load_models(self) -> None:
        self.engine.load_models()

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        return self.engine.analyze_selfie(data, strict=strict)

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:  # noqa: ARG002 - the FaceProvider protocol
        return self.engine.index_photo(data)

    def face_signature(self, face: DetectedFace) -> bytes:
        assert face.descriptor is not None
        return to_blob(face.descriptor)

    def selfie_signature(self, analysis: SelfieAnalysis, *, selfie_id: int, image: bytes) -> bytes:  # noqa: ARG002 - the FaceProvider protocol
        return self.face_signature(analysis.face)

    def forget_selfie(self, signature: bytes) -> None:
        """Nothing to do: the descriptor lives only in our database."""

    def find_photos(
        self,
        *,
        session: Session,
        signature: bytes,
        image: Callable[[], bytes],  # noqa: ARG002 - the FaceProvider protocol
        event_ids: Sequence[int],
    ) -> list[PhotoMatch]:
        from app.faces.service import event_gallery

        probe = from_blob(signature)
        return [
            PhotoMatch(face_id, photo_id, event_id, distance)
            for event_id in event_ids
            for face_id, photo_id, distance in event_gallery(
                session=session, event_id=event_id, provider=self.name
            ).match(probe, threshold=self.threshold)
        ]

    def find_selfies(
        self,
        *,
        faces: Sequence[StoredFace],
        image: Callable[[], bytes],  # noqa: ARG002 - the FaceProvider protocol
        selfies: Sequence[GuestSelfie],
    ) -> list[SelfieMatch]:
        if not faces or not selfies:
            return []
        probes = np.stack([from_blob(s.signature) for s in selfies])
        vectors = np.stack([from_blob(f.signature) for f in faces])
        best: dict[int, tuple[int, float]] = {}
        for probe_i, face_i, distance in match_many(probes, vectors, self.threshold):
            if probe_i not in best or distance < best[probe_i][1]:
                best[probe_i] = (face_i, distance)
        return [
            SelfieMatch(selfies[i].selfie_id, selfies[i].user_id, faces[face_i].face_id, distance)
            for i, (face_i, distance) in best.items()
        ]


def build_provider(settings: Settings) -> FaceProvider:
    if settings.face_provider == "azure":
        from app.faces.azure import AzureProvider

        return AzureProvider.from_settings(settings)
    return LocalProvider(threshold=settings.face_match_threshold, max_pixels=settings.max_image_pixels)


@lru_cache
def get_face_provider() -> FaceProvider:
    return build_provider(get_settings())
