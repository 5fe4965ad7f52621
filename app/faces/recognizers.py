"""Face recognizers of the local engine: SFace (OpenCV DNN, the default) and dlib's ResNet.

A recognizer turns detected faces into 128-d float32 descriptors compared by euclidean
distance. Its ``model`` names the descriptors it makes: every stored face and selfie template
records it, and descriptors of two models are never compared (docs/FACES.md, "Switching the
recognizer"). Models load on first use, once per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.faces import weights
from app.faces.detectors import Detection, quiet_opencv

#: The model names stored with descriptors (``faces.model``, ``selfies.model``).
SFACE_MODEL = "sface-2021dec-int8bq"
DLIB_MODEL = "dlib-resnet-v1"


@dataclass(frozen=True, slots=True)
class MatchDefaults:
    """The matching distances measured for a model (docs/FACES.md): a direct match, and
    gallery-aware expansion (0 switches it off)."""

    threshold: float
    expand: float
    guard: float


class Recognizer(Protocol):
    name: str
    model: str
    needs_landmarks: bool
    defaults: MatchDefaults

    def load(self) -> None: ...

    def describe(self, pixels: np.ndarray, faces: list[Detection]) -> list[np.ndarray]:
        """One read-only descriptor per face of the RGB ``pixels``, in order."""
        ...


# The 112x112 five-point template SFace (like ArcFace) was trained on, in the order YuNet
# gives its landmarks.
_SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


class SFaceRecognizer:
    """SFace 2021dec (block-int8) through OpenCV's DNN: the face aligned on its five
    landmarks to 112x112, RGB order (as ``cv2.FaceRecognizerSF``), unit-length output, so
    the euclidean distance d relates to SFace's cosine similarity c by d^2 = 2 - 2c."""

    name = "sface"
    model = SFACE_MODEL
    needs_landmarks = True
    defaults = MatchDefaults(threshold=1.0, expand=1.0, guard=1.16)

    def __init__(self) -> None:
        self._local = threading.local()

    def load(self) -> None:
        self._net()

    def _net(self) -> Any:
        net = getattr(self._local, "net", None)
        if net is None:
            import cv2

            quiet_opencv()
            net = cv2.dnn.readNetFromONNX(weights.verified_path(weights.SFACE))
            self._local.net = net
        return net

    @staticmethod
    def aligned(pixels: np.ndarray, face: Detection) -> np.ndarray:
        """The 112x112 RGB crop of ``face`` on the template."""
        import cv2

        if face.landmarks is None:
            raise ValueError("SFace needs the detector's landmarks (FACE_DETECTOR=yunet)")
        matrix, _ = cv2.estimateAffinePartial2D(face.landmarks, _SFACE_TEMPLATE, method=cv2.LMEDS)
        if matrix is None:  # degenerate landmarks: fit the box instead
            box = face.box
            scale = 112.0 / max(box.width, box.height)
            matrix = np.array([[scale, 0, -box.left * scale], [0, scale, -box.top * scale]], dtype=np.float64)
        return cv2.warpAffine(
            pixels, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def describe(self, pixels: np.ndarray, faces: list[Detection]) -> list[np.ndarray]:
        if not faces:
            return []
        import cv2

        chips = np.stack([self.aligned(pixels, face) for face in faces])
        blob = cv2.dnn.blobFromImages(list(chips), 1.0, (112, 112), (0, 0, 0), swapRB=False, crop=False)
        net = self._net()
        out = []
        # One face per forward: the int8 graph is built for a batch of one.
        for row in blob:
            net.setInput(row[None], "data")
            vector = np.asarray(net.forward(), dtype=np.float32).reshape(-1)
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
            vector.setflags(write=False)
            out.append(vector)
        return out


# A face whose aligned chip is darker than this (mean, 0-255) has its levels stretched before
# its dlib descriptor is computed: the ResNet is not invariant to exposure, and on photos
# dimmed to 35 % it lifts gallery-aware recall from 0.854 to 0.917 (docs/FACES.md). Faces lit
# normally keep exactly the descriptor they always had, so stored descriptors stay comparable.
DARK_CHIP_MEAN = 100.0


def lit(chip: np.ndarray) -> np.ndarray:
    """``chip`` unchanged, or, when dark, with its luminance stretched from its 1st-99th
    percentiles to the full range (colours kept in proportion)."""
    if float(chip.mean()) >= DARK_CHIP_MEAN:
        return chip
    levels = chip.astype(np.float32)
    luma = levels.mean(axis=2)
    low, high = np.percentile(luma, 1), np.percentile(luma, 99)
    if high - low < 1:
        return chip
    stretched = np.clip((levels - low) * (255.0 / (high - low)), 0, 255)
    return np.ascontiguousarray(stretched.astype(np.uint8))


@dataclass(frozen=True, slots=True)
class _DlibModels:
    shape_predictor: Any
    encoder: Any


_dlib: _DlibModels | None = None
_dlib_lock = threading.Lock()


def _dlib_models() -> _DlibModels:
    global _dlib
    if _dlib is None:
        with _dlib_lock:
            if _dlib is None:
                import dlib

                _dlib = _DlibModels(
                    shape_predictor=dlib.shape_predictor(weights.verified_path(weights.DLIB_SHAPE_5)),
                    encoder=dlib.face_recognition_model_v1(weights.verified_path(weights.DLIB_RESNET)),
                )
    return _dlib


class DlibRecognizer:
    """dlib's ResNet (5-point landmarks of its own on the detector's box, 150 px chip)."""

    name = "dlib"
    model = DLIB_MODEL
    needs_landmarks = False
    defaults = MatchDefaults(threshold=0.5, expand=0.55, guard=0.6)

    def load(self) -> None:
        _dlib_models()

    def describe(self, pixels: np.ndarray, faces: list[Detection]) -> list[np.ndarray]:
        if not faces:
            return []
        import dlib

        models = _dlib_models()
        out = []
        for face in faces:
            left, top, right, bottom = face.rect
            shape = models.shape_predictor(pixels, dlib.rectangle(left, top, right - 1, bottom - 1))
            # The aligned chip dlib's encoder would cut itself (same descriptor, bit for bit).
            chip = dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
            vector = np.asarray(models.encoder.compute_face_descriptor(lit(chip)), dtype=np.float32)
            vector.setflags(write=False)
            out.append(vector)
        return out


RECOGNIZERS: dict[str, type[SFaceRecognizer] | type[DlibRecognizer]] = {
    "sface": SFaceRecognizer,
    "dlib": DlibRecognizer,
}


def model_of(recognizer: str) -> str:
    """The model name a recognizer setting (``FACE_RECOGNIZER``) stores its descriptors under."""
    return RECOGNIZERS[recognizer].model
