"""The contract between the face services and whoever computes faces (a provider).

A provider checks selfies, finds the faces of event photos, and finds matches both ways (a
selfie's photos; a new photo's selfies). It is a plain synchronous object used inside face
worker processes. It never sees the database: callers give it what it needs (images,
signatures, a :class:`FaceLookup` of the stored faces) and store what it returns. Services
keep whatever ``*_signature`` a provider returns and never look inside it, so a new
provider plugs in here without touching services, jobs or routes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from app.core.errors import Unprocessable
from app.faces.matching import Gallery, columns
from app.jobs.kinds import Postpone

#: The shortest side, in original pixels, a strict selfie's face may have (every provider).
MIN_SELFIE_FACE_PX = 80

NO_FACE_MESSAGE = "We could not find a face. Face the camera in good light, with nothing covering your face."
MULTIPLE_FACES_MESSAGE = (
    "We found {count} faces. Take a selfie with only your face in the picture and try again."
)
FACE_TOO_SMALL_MESSAGE = (
    "Your face is too small in the picture. Hold the phone closer so your face fills the frame."
)


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face rectangle in pixels of the upright (EXIF-rotated) original image.

    Half-open like a Pillow crop box: ``right`` and ``bottom`` are one past the last pixel.
    """

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def iou(self, other: FaceBox) -> float:
        """Intersection over union: how much two boxes are the same face (0 to 1)."""
        w = min(self.right, other.right) - max(self.left, other.left)
        h = min(self.bottom, other.bottom) - max(self.top, other.top)
        if w <= 0 or h <= 0:
            return 0.0
        inter = w * h
        return inter / (self.width * self.height + other.width * other.height - inter)


@dataclass(frozen=True, slots=True, eq=False)
class DetectedFace:
    """One face: its box and, from a local engine, its descriptor (read-only float32 vector
    of the engine's size); a remote provider gives its own reference for the face instead."""

    box: FaceBox
    descriptor: np.ndarray | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class SelfieAnalysis:
    """The face chosen from a selfie, how many faces were seen, and its quality metrics
    (``face_px``, the short side of the face box in original pixels, from every provider;
    the others are the provider's own)."""

    face: DetectedFace
    faces_found: int
    quality: dict[str, float]


class SelfieRejected(Unprocessable):
    """A selfie that cannot be used; ``code`` says why and ``message`` what to do about it.

    Codes: ``no_face``, ``multiple_faces``, ``face_too_small``, ``face_hidden`` (a mask,
    sunglasses, or part of the face out of the frame), ``face_turned``, ``too_blurry``,
    ``too_dark``;
    Azure Face adds ``low_quality`` (its ``qualityForRecognition``).
    """

    code = "selfie_rejected"
    message = "This selfie cannot be used. Take another one facing the camera in good light."


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
class FaceRef:
    """Where a stored face is: its id, its photo, its signature."""

    face_id: int
    photo_id: int
    signature: bytes


@dataclass(frozen=True)
class GuestSelfies:
    """The accepted selfies of an event's guests, read for each new photo: their ids in two
    arrays and their signatures end to end in one buffer, not an object each (a marathon's
    40,000 guests are 20 MB of descriptors, and 40,000 objects would hold three times that)."""

    selfie_ids: np.ndarray  # int64
    user_ids: np.ndarray  # int64
    signatures: bytes | bytearray
    ends: np.ndarray  # where each signature ends in ``signatures``

    @classmethod
    def of(cls, rows: Iterable[tuple[int, int, bytes]]) -> GuestSelfies:
        """From ``(selfie id, user id, signature)`` rows, consumed one at a time."""
        return cls(*columns(rows))

    def __len__(self) -> int:
        return len(self.selfie_ids)

    def signature(self, i: int) -> bytes:
        start = int(self.ends[i - 1]) if i else 0
        return bytes(self.signatures[start : int(self.ends[i])])

    def joined(self, width: int) -> memoryview:
        """Every signature end to end, each ``width`` bytes (a matrix's rows, not a copy)."""
        if len(self) and not (np.diff(self.ends, prepend=0) == width).all():
            raise ValueError(f"a guest's signature is not {width} bytes")
        return memoryview(self.signatures)


class FaceLookup(Protocol):
    """The faces stored for an event, as a provider asks for them while matching a selfie.
    Only faces this provider made are returned."""

    def near(self, event_id: int, probe: np.ndarray, radius: float) -> Gallery:
        """The event's faces within ``radius`` of ``probe`` (local descriptors), with their
        exact descriptors, for matching in numpy."""
        ...

    def with_signatures(self, event_id: int, signatures: Collection[bytes]) -> list[FaceRef]:
        """The event's faces whose signature is one of ``signatures``."""
        ...


#: The name of the local engine's provider, stored with every face and selfie it describes.
#: It keeps nothing outside our database, so there is nothing to erase elsewhere.
LOCAL_PROVIDER = "local"


def keeps_copies(provider: str) -> bool:
    """Whether faces of ``provider`` (a stored name) also live at the provider, to be erased
    there when they go here."""
    return provider != LOCAL_PROVIDER


@runtime_checkable
class FaceProvider(Protocol):
    name: str

    @property
    def model(self) -> str:
        """The model of the signatures it makes (stored with every face and selfie template);
        signatures of two models are never compared."""
        ...

    def load_models(self) -> None:
        """Get ready in a new worker process (load models), rather than on first use."""
        ...

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        """The guest's face in a selfie, or ``SelfieRejected`` with an actionable reason."""
        ...

    def index_photo(self, data: bytes, *, event_id: int) -> list[DetectedFace]:
        """Every face of an event photo (possibly none)."""
        ...

    def index_image(self, img: Image.Image, *, event_id: int) -> list[DetectedFace]:
        """:meth:`index_photo` of the photo already decoded (upright RGB, full size), so that
        the photo job decodes each photo once."""
        ...

    def face_signature(self, face: DetectedFace) -> bytes:
        """What the database keeps for a photo face (``faces.descriptor``)."""
        ...

    def selfie_signature(self, analysis: SelfieAnalysis, *, selfie_id: int, image: bytes) -> bytes:
        """What the database keeps for an accepted selfie (``selfies.descriptor``)."""
        ...

    def forget_selfie(self, signature: bytes) -> None:
        """A selfie was replaced or erased: drop whatever the provider keeps of it."""
        ...

    def forget_faces(self, *, event_id: int, signatures: Sequence[bytes]) -> None:
        """Photo faces of an event were erased: drop what the provider keeps of them."""
        ...

    def forget_event(self, event_id: int) -> None:
        """An event was erased: drop everything the provider keeps for it."""
        ...

    def find_photos(
        self,
        *,
        signature: bytes,
        image: Callable[[], bytes],
        event_ids: Sequence[int],
        faces: FaceLookup,
        exclude_photos: Collection[int] = (),
    ) -> list[PhotoMatch]:
        """The event faces matching a selfie (``image`` loads it, for a provider that needs
        it again): the best face per photo, none of ``exclude_photos`` (the guest's "not me")."""
        ...

    def find_selfies(
        self, *, faces: Sequence[StoredFace], image: Callable[[], bytes], selfies: GuestSelfies
    ) -> list[SelfieMatch]:
        """The guests' selfies matching the faces of a new photo (``image`` loads the photo,
        for a provider that needs it again): the best face per selfie."""
        ...

    def rematch_candidates(self, *, faces: Sequence[StoredFace], selfies: GuestSelfies) -> list[int]:
        """The users whose gallery-aware matches a new photo's faces may change (this photo,
        or earlier ones it links to): their matches are computed again. Empty for a provider
        that does not match gallery-aware."""
        ...
