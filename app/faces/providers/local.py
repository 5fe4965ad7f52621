"""The local provider: the local engine on this machine (``app.faces.engine``), offline, the
default.

A face's signature is its 128-d descriptor; matching is euclidean distance in numpy, a
selfie against an event's whole gallery at once, a new photo's faces against the guests'
selfies, only ever between descriptors of the engine's model. Nothing is kept outside our
database.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np
from PIL import Image

from app.faces.engine import LocalEngine
from app.faces.matching import DESCRIPTOR_SIZE, Gallery, from_blob, from_blobs, match_many, to_blob
from app.faces.providers.base import (
    LOCAL_PROVIDER,
    DetectedFace,
    FaceLookup,
    GuestSelfies,
    PhotoMatch,
    SelfieAnalysis,
    SelfieMatch,
    StoredFace,
)


class LocalProvider:
    """The local engine; matching in numpy against descriptors the caller looks up."""

    name = LOCAL_PROVIDER

    def __init__(
        self, *, engine: LocalEngine, threshold: float, expand: float = 0.0, guard: float = 0.0
    ) -> None:
        self.engine = engine
        self.threshold = threshold
        self.expand = expand
        self.guard = guard

    @property
    def model(self) -> str:
        return self.engine.model

    def __repr__(self) -> str:
        return (
            f"LocalProvider(threshold={self.threshold}, expand={self.expand}, guard={self.guard}, "
            f"engine={self.engine!r})"
        )

    def load_models(self) -> None:
        self.engine.load_models()

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        return self.engine.analyze_selfie(data, strict=strict)

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:  # noqa: ARG002 - the FaceProvider protocol
        return self.engine.index_photo(data)

    def index_image(self, img: Image.Image, *, event_id: int) -> list[DetectedFace]:  # noqa: ARG002 - the FaceProvider protocol
        return self.engine.index_image(img)

    def face_signature(self, face: DetectedFace) -> bytes:
        if face.descriptor is None:
            raise ValueError("a local face needs its descriptor")
        return to_blob(face.descriptor)

    def selfie_signature(self, analysis: SelfieAnalysis, *, selfie_id: int, image: bytes) -> bytes:  # noqa: ARG002 - the FaceProvider protocol
        return self.face_signature(analysis.face)

    def forget_selfie(self, signature: bytes) -> None:
        """Nothing to do: the descriptor lives only in our database."""

    def forget_faces(self, *, event_id: int, signatures: Sequence[bytes]) -> None:
        """Nothing to do: descriptors live only in our database."""

    def forget_event(self, event_id: int) -> None:
        """Nothing to do: descriptors live only in our database."""

    def find_photos(
        self,
        *,
        signature: bytes,
        image: Callable[[], bytes],  # noqa: ARG002 - the FaceProvider protocol
        event_ids: Sequence[int],
        faces: FaceLookup,
        exclude_photos: Collection[int] = (),
    ) -> list[PhotoMatch]:
        """Gallery-aware: each event's faces close to the average of the selfie and its direct
        matches join them (``Gallery.match``, ``FACE_MATCH_EXPAND`` / ``FACE_MATCH_GUARD``)."""
        probe = from_blob(signature)
        return [
            PhotoMatch(face_id, photo_id, event_id, distance)
            for event_id in event_ids
            for face_id, photo_id, distance in self._candidates(faces, event_id, probe, exclude_photos).match(
                probe,
                threshold=self.threshold,
                expand=self.expand,
                guard=self.guard,
                exclude_photos=exclude_photos,
            )
        ]

    def _candidates(
        self, faces: FaceLookup, event_id: int, probe: np.ndarray, exclude_photos: Collection[int]
    ) -> Gallery:
        """Every face that :meth:`Gallery.match` could match, in two lookups: those within the
        threshold of the selfie, then those within ``expand`` of the expansion's centre (never
        every face within ``guard`` of the selfie: in 128 dimensions that ring holds thousands
        of strangers' faces in a marathon, and only those near the centre can match)."""
        direct = faces.near(event_id, probe, self.threshold)
        if not (self.expand and self.guard > self.threshold):
            return direct
        centre = direct.expansion_centre(probe, threshold=self.threshold, exclude_photos=exclude_photos)
        return direct if centre is None else direct.union(faces.near(event_id, centre, self.expand))

    def find_selfies(
        self,
        *,
        faces: Sequence[StoredFace],
        image: Callable[[], bytes],  # noqa: ARG002 - the FaceProvider protocol
        selfies: GuestSelfies,
    ) -> list[SelfieMatch]:
        if not faces or not selfies:
            return []
        probes = _selfie_matrix(selfies)
        vectors = np.stack([from_blob(f.signature) for f in faces])
        best: dict[int, tuple[int, float]] = {}
        for probe_i, face_i, distance in match_many(probes, vectors, self.threshold):
            if probe_i not in best or distance < best[probe_i][1]:
                best[probe_i] = (face_i, distance)
        return [
            SelfieMatch(int(selfies.selfie_ids[i]), int(selfies.user_ids[i]), faces[face_i].face_id, distance)
            for i, (face_i, distance) in best.items()
        ]

    def rematch_candidates(self, *, faces: Sequence[StoredFace], selfies: GuestSelfies) -> list[int]:
        """The guests with a selfie within ``guard`` of one of the photo's faces: a new direct
        match can bring earlier photos along, and a face beyond the threshold can join through
        the guest's other photos."""
        if not (self.expand and faces and selfies):
            return []
        vectors = np.stack([from_blob(f.signature) for f in faces])
        near = sorted(
            {probe_i for probe_i, _face_i, _d in match_many(_selfie_matrix(selfies), vectors, self.guard)}
        )
        return sorted(set(selfies.user_ids[near].tolist()))


def _selfie_matrix(selfies: GuestSelfies) -> np.ndarray:
    """The guests' selfie descriptors as one matrix over their buffer."""
    return from_blobs(selfies.joined(DESCRIPTOR_SIZE * 4), count=len(selfies))
