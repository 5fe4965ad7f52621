"""Face detectors of the local engine: YuNet (OpenCV DNN, the default) and dlib's HOG.

A detector turns an upright RGB image into :class:`Detection` s in the image's own pixels:
the box, the unclipped rectangle, the five landmarks when the detector gives them, and a
score. Each chooses its own working resolution (the scale policy); callers only say how
small a face must still be found. Models load on first use, once per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from app.faces import weights
from app.faces.images import downscale
from app.faces.providers.base import FaceBox


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    box: FaceBox  # clipped to the image
    rect: tuple[int, int, int, int]  # unclipped (left, top, right, bottom), for landmark models
    # (5, 2) float32 in image pixels: right eye, left eye, nose tip, right and left mouth
    # corners (the subject's right is the image's left); None from a detector without them.
    landmarks: np.ndarray | None
    score: float


class Detector(Protocol):
    name: str
    gives_landmarks: bool
    #: Selfies are decoded at no more than this long side (None: full size, for a detector
    #: that needs large faces).
    selfie_side: int | None

    def load(self) -> None: ...

    def detect(self, img: Image.Image, *, min_face_px: int) -> list[Detection]:
        """Faces of ``img`` down to ``min_face_px`` (short side, image pixels)."""
        ...

    def detect_quick(self, img: Image.Image) -> list[Detection]:
        """Large faces only, on a small copy (a selfie's first pass)."""
        ...


def _clip(
    img_size: tuple[int, int], left: float, top: float, right: float, bottom: float
) -> Detection | None:
    rect = (round(left), round(top), round(right), round(bottom))
    box = FaceBox(max(0, rect[0]), max(0, rect[1]), min(img_size[0], rect[2]), min(img_size[1], rect[3]))
    if box.width <= 0 or box.height <= 0:
        return None
    return Detection(box=box, rect=rect, landmarks=None, score=1.0)


def quiet_opencv() -> None:
    """One OpenCV thread per face worker (the workers are the parallelism: one per core), and
    no warnings about DNN targets the new graph engine ignores."""
    import cv2

    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


# --- YuNet ---------------------------------------------------------------------------------------

#: YuNet finds faces from about this many pixels wide on its input; the working scale of a
#: photo puts its smallest wanted face there (docs/FACES.md, "Scale policy").
YUNET_SMALLEST_PX = 20
#: Side of the coarse pass that finds faces too large for the fine one.
YUNET_COARSE_SIDE = 640
#: The fine pass never works on more pixels than this (a 50 MP photo is scanned at 16 MP,
#: so its smallest faces found are about 36 px x sqrt(50 / 16 x 0.31) ~ 36-40 px).
YUNET_MAX_WORK_PIXELS = 16_000_000


class YuNetDetector:
    """YuNet 2023mar (block-int8) through ``cv2.FaceDetectorYN``; five landmarks per face.

    Photos are searched twice: a fine pass scaled so a ``min_face_px`` face is about
    ``YUNET_SMALLEST_PX`` wide, and a coarse pass at ``YUNET_COARSE_SIDE`` for faces larger
    than the fine pass's range; the two are merged by non-maximum suppression.
    """

    name = "yunet"
    gives_landmarks = True
    selfie_side: int | None = 1600  # a usable selfie face is large; the browser sends 1600 px

    def __init__(self, *, score_threshold: float = 0.6, nms_threshold: float = 0.3) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._local = threading.local()

    def load(self) -> None:
        self._detector()

    def _create(self) -> Any:
        import cv2

        quiet_opencv()
        return cv2.FaceDetectorYN.create(
            weights.verified_path(weights.YUNET),
            "",
            (320, 320),
            self.score_threshold,
            self.nms_threshold,
            5000,
        )

    def _detector(self) -> Any:
        """This thread's detector for small images (selfies, coarse passes)."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._create()
        return detector

    def _run(self, rgb: np.ndarray, factor: float, detector: Any = None) -> list[tuple[np.ndarray, float]]:
        """Raw detections of ``rgb`` (an image ``factor`` times smaller than the original),
        as rows in original pixels: x, y, w, h, 10 landmark coordinates, score."""
        import cv2

        detector = detector if detector is not None else self._detector()
        height, width = rgb.shape[:2]
        detector.setInputSize((width, height))
        _, found = detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if found is None:
            return []
        rows = np.asarray(found, dtype=np.float32).copy()
        rows[:, :14] *= factor
        return [(row, float(row[14])) for row in rows]

    @staticmethod
    def _resized(pixels: np.ndarray, scale: float) -> np.ndarray:
        import cv2

        if scale >= 1.0:
            return pixels
        height, width = pixels.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)

    def _detections(self, img: Image.Image, rows: list[tuple[np.ndarray, float]]) -> list[Detection]:
        rows = _nms(rows, self.nms_threshold)
        found = []
        for row, score in rows:
            x, y, w, h = (float(v) for v in row[:4])
            clipped = _clip(img.size, x, y, x + w, y + h)
            if clipped is not None:
                landmarks = row[4:14].reshape(5, 2).copy()
                found.append(Detection(clipped.box, clipped.rect, landmarks, score))
        return found

    def detect(self, img: Image.Image, *, min_face_px: int) -> list[Detection]:
        pixels = np.asarray(img)
        height, width = pixels.shape[:2]
        scale = min(1.0, YUNET_SMALLEST_PX / max(1, min_face_px))
        scale = min(scale, (YUNET_MAX_WORK_PIXELS / (width * height)) ** 0.5)
        # A detector of its own for the photo's working size, let go with it: YuNet keeps the
        # buffers of the largest input it saw (60 MB at a crowd photo's), which a worker's
        # shared detector would hold between photos (13 ms to make one, ~1 % of a photo).
        rows = self._run(self._resized(pixels, scale), 1.0 / scale, self._create())
        if max(width, height) * scale > 2 * YUNET_COARSE_SIDE:
            coarse = YUNET_COARSE_SIDE / max(width, height)
            rows += self._run(self._resized(pixels, coarse), 1.0 / coarse)
        return self._detections(img, rows)

    def detect_quick(self, img: Image.Image) -> list[Detection]:
        pixels = np.asarray(img)
        scale = min(1.0, YUNET_COARSE_SIDE / max(pixels.shape[:2]))
        return self._detections(img, self._run(self._resized(pixels, scale), 1.0 / scale))


def _nms(rows: list[tuple[np.ndarray, float]], threshold: float) -> list[tuple[np.ndarray, float]]:
    """The best-scored of detections that overlap by more than ``threshold`` (IoU)."""
    kept: list[tuple[np.ndarray, float]] = []
    for row, score in sorted(rows, key=lambda item: -item[1]):
        box = FaceBox(int(row[0]), int(row[1]), int(row[0] + row[2]) + 1, int(row[1] + row[3]) + 1)
        if all(
            box.iou(FaceBox(int(k[0]), int(k[1]), int(k[0] + k[2]) + 1, int(k[1] + k[3]) + 1)) <= threshold
            for k, _ in kept
        ):
            kept.append((row, score))
    return kept


# --- dlib HOG ------------------------------------------------------------------------------------

# Photos whose long side is under half of this get one doubling before detection.
SMALL_PHOTO_REFERENCE = 2560

_hog: Any = None
_hog_lock = threading.Lock()


def _hog_detector() -> Any:
    global _hog
    if _hog is None:
        with _hog_lock:
            if _hog is None:
                import dlib

                _hog = dlib.get_frontal_face_detector()
    return _hog


class HogDetector:
    """dlib's HOG detector (no landmarks). Photos are searched on a copy whose long side is at
    most ``max_side`` with ``upsample`` doublings; one more doubling for photos under
    ``min(max_side, 2560) / 2``. Faces under about 80 px at the working scale are missed, so
    ``min_face_px`` cannot be asked of it: the scale is the operator's (``FACE_DETECT_*``)."""

    name = "hog"
    gives_landmarks = False
    selfie_side: int | None = None  # HOG misses faces under about 80 px: it needs them all

    def __init__(self, *, max_side: int = 4096, upsample: int = 0, quick_side: int = 800) -> None:
        self.max_side = max_side
        self.upsample = upsample
        self.quick_side = quick_side

    def load(self) -> None:
        _hog_detector()

    def _run(self, img: Image.Image, max_side: int, upsample: int) -> list[Detection]:
        small, factor = downscale(img, max_side=max_side)
        found = []
        for rect in _hog_detector()(np.asarray(small), upsample):
            # dlib rectangles are inclusive; scale the half-open box back to original pixels.
            clipped = _clip(
                img.size,
                *(value * factor for value in (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)),
            )
            if clipped is not None:
                found.append(clipped)
        return found

    def detect(self, img: Image.Image, *, min_face_px: int) -> list[Detection]:  # noqa: ARG002 - the Detector protocol
        upsample = self.upsample
        if max(downscale(img, max_side=self.max_side)[0].size) * 2 < min(
            self.max_side, SMALL_PHOTO_REFERENCE
        ):
            # Small uploads (under 1280 px by default) get one doubling, which finds faces
            # down to ~32 px and costs no more than detecting on a large photo.
            upsample += 1
        return self._run(img, self.max_side, upsample)

    def detect_quick(self, img: Image.Image) -> list[Detection]:
        return self._run(img, self.quick_side, 0)
