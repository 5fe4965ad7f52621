"""The local face engine: a detector and a recognizer on this machine's CPU, offline.

This module owns the selfie acceptance rules (one usable face: large, frontal, unhidden,
sharp and bright enough) and how a photo's faces are found and described; the detectors
(:mod:`app.faces.detectors`: YuNet, dlib HOG) and recognizers (:mod:`app.faces.recognizers`:
SFace, dlib ResNet) do the rest. :mod:`app.faces.providers.local` turns it into a provider.
The engine is a plain synchronous object meant to run inside worker processes; the caller
owns the processes. Importing this module imports neither OpenCV nor dlib: models load on
first use, once per process, from files whose SHA-256 is checked (:mod:`app.faces.weights`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from app.faces.detectors import Detection, Detector, HogDetector, YuNetDetector
from app.faces.images import DEFAULT_MAX_PIXELS, load_rgb, load_rgb_reduced
from app.faces.providers.base import (
    FACE_TOO_SMALL_MESSAGE,
    MIN_SELFIE_FACE_PX,
    MULTIPLE_FACES_MESSAGE,
    NO_FACE_MESSAGE,
    DetectedFace,
    FaceBox,
    SelfieAnalysis,
    SelfieRejected,
)
from app.faces.recognizers import RECOGNIZERS, DlibRecognizer, Recognizer, SFaceRecognizer

#: Side of the square greyscale face crop the sharpness and brightness metrics are taken on.
QUALITY_CROP_PX = 150
#: How far the nose may sit from the middle of the eyes, in eye distances, on a selfie
#: (0-0.25 on selfies facing the camera, about 0.6 at a three-quarter turn).
MAX_SELFIE_YAW = 0.45
#: On a selfie, only detections this sure count as faces (a painting or a poster behind the
#: guest scores 0.6-0.77); when the only detections are weaker, the face is partly hidden.
MIN_SELFIE_SCORE = 0.8

_TOO_BLURRY = "The photo is too blurry. Hold the phone steady, wipe the camera lens and try again."
_TOO_DARK = "The photo is too dark. Move somewhere brighter or face a window or a light, and try again."
_TURNED = "Your face is turned away. Look straight at the camera and try again."
_HIDDEN = (
    "Part of your face is hidden or out of the picture. Remove a mask or sunglasses, "
    "keep your whole face in the frame and try again."
)


def face_quality(img: Image.Image, box: FaceBox) -> dict[str, float]:
    """Size, sharpness and brightness of the face in ``box`` (see :class:`LocalEngine`)."""
    crop = img.crop((box.left, box.top, box.right, box.bottom)).convert("L")
    crop = crop.resize((QUALITY_CROP_PX, QUALITY_CROP_PX), Image.Resampling.BILINEAR)
    luma = np.asarray(crop, dtype=np.float32)
    brightness = float(luma.mean())
    laplacian = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    # Normalising to mean luma 128 keeps a sharp but dim face from reading as blurry, so a
    # dark selfie is reported as too dark rather than too blurry.
    sharpness = float(laplacian.var()) * (128.0 / max(brightness, 1.0)) ** 2
    return {
        "face_px": float(min(box.width, box.height)),
        "sharpness": sharpness,
        "brightness": brightness,
    }


# What covers part of a face, read on the 112x112 chip aligned on the landmarks (the eyes at
# (38, 51) and (73, 51), the nose at (56, 72), the mouth at y 92), against the forehead and
# cheeks. Real selfies of the fixtures: eyes 0.40-0.81 of the skin's luma, the lower face
# 0.56-0.90 of it and 0.007-0.093 away in chromaticity; sunglasses drawn on them 0.15-0.36,
# masks 1.18-1.7 (white) or 0.064-0.21 (blue) (docs/FACES.md, "Selfie checks").
MAX_EYES_DARKNESS = 0.3
MAX_LOWER_FACE_LUMA = 1.1
MAX_LOWER_FACE_CHROMA = 0.12


def occlusion(pixels: np.ndarray, face: Detection) -> dict[str, float]:
    """``eyes_luma``: the eyes' mean luma over the skin's (dark glasses read low);
    ``lower_luma`` and ``lower_chroma``: the face below the nose against the skin (a mask
    reads bright or off-colour). Empty without landmarks."""
    if face.landmarks is None:
        return {}
    chip = SFaceRecognizer.aligned(pixels, face).astype(np.float32)
    skin = np.concatenate(
        [
            chip[20:40, 38:74].reshape(-1, 3),
            chip[60:80, 22:34].reshape(-1, 3),
            chip[60:80, 78:90].reshape(-1, 3),
        ]
    )
    lower = chip[82:104, 36:76].reshape(-1, 3)
    luma = chip.mean(axis=2)
    eyes = np.concatenate([luma[45:58, 30:47].ravel(), luma[45:58, 65:82].ravel()])

    def chromaticity(px: np.ndarray) -> np.ndarray:
        return np.asarray((px / (px.sum(axis=1, keepdims=True) + 1e-3))[:, :2].mean(axis=0))

    skin_luma = max(float(skin.mean()), 1.0)
    return {
        "eyes_luma": float(eyes.mean()) / skin_luma,
        "lower_luma": float(lower.mean()) / skin_luma,
        "lower_chroma": float(np.linalg.norm(chromaticity(lower) - chromaticity(skin))),
    }


def pose(face: Detection) -> dict[str, float]:
    """``yaw``: the nose's offset from the middle of the eyes along the eye line, in eye
    distances (0 facing the camera); ``landmarks_inside``: 1 when the five landmarks lie in
    the image's face box, 0 when some fall outside it (the face is cut by the frame)."""
    if face.landmarks is None:
        return {}
    right_eye, left_eye, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
    axis = left_eye - right_eye
    eye_distance = float(np.linalg.norm(axis))
    yaw = float(np.dot(nose - (left_eye + right_eye) / 2, axis) / max(eye_distance, 1e-6) ** 2)
    box = face.box
    inside = all(box.left <= x < box.right and box.top <= y < box.bottom for x, y in face.landmarks)
    return {"yaw": yaw, "landmarks_inside": float(inside), "score": face.score}


class LocalEngine:
    """A detector and a recognizer, with the selfie rules.

    Settings (keyword-only; docs/FACES.md has the measurements behind each default):
    ``max_pixels`` (``MAX_IMAGE_PIXELS``): larger images get 413 ``image_too_large``.
    ``photo_min_face_px`` (36): the smallest face an event photo is searched for (the
    detector's scale policy). ``min_face_px`` (80), ``min_sharpness`` (40.0),
    ``min_brightness`` (40.0): a strict selfie's face box, Laplacian variance and mean luma of
    its 150x150 greyscale crop.

    Selfie rules: no face -> ``no_face``; several faces -> ``multiple_faces`` when ``strict``,
    otherwise the largest face is used and the checks are skipped (the metrics are still
    reported in ``SelfieAnalysis.quality``). In strict mode the checks run in the order
    ``face_too_small``, ``face_hidden`` (a low detector score, or landmarks out of the
    frame), ``face_turned``, ``too_blurry``, ``too_dark``; the landmark checks need a
    detector that gives landmarks (YuNet).
    """

    def __init__(
        self,
        *,
        detector: Detector,
        recognizer: Recognizer,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        photo_min_face_px: int = 36,
        min_face_px: int = MIN_SELFIE_FACE_PX,
        min_sharpness: float = 40.0,
        min_brightness: float = 40.0,
    ) -> None:
        if max_pixels < 1 or photo_min_face_px < 8 or min_face_px < 0:
            raise ValueError("invalid LocalEngine settings")
        if recognizer.needs_landmarks and not detector.gives_landmarks:
            raise ValueError(f"the {recognizer.name} recognizer needs a detector with landmarks (yunet)")
        self.detector = detector
        self.recognizer = recognizer
        self.max_pixels = max_pixels
        self.photo_min_face_px = photo_min_face_px
        self.min_face_px = min_face_px
        self.min_sharpness = min_sharpness
        self.min_brightness = min_brightness

    @property
    def model(self) -> str:
        """The model of the descriptors this engine makes."""
        return self.recognizer.model

    def __repr__(self) -> str:
        return (
            f"LocalEngine(detector={self.detector.name}, recognizer={self.recognizer.name}, "
            f"max_pixels={self.max_pixels}, photo_min_face_px={self.photo_min_face_px}, "
            f"min_face_px={self.min_face_px}, min_sharpness={self.min_sharpness}, "
            f"min_brightness={self.min_brightness})"
        )

    def load_models(self) -> None:
        """Load the models now (e.g. in a worker's initialiser) instead of on first use."""
        self.detector.load()
        self.recognizer.load()

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        side = self.detector.selfie_side
        if side is None:
            img, factor = load_rgb(data, max_pixels=self.max_pixels), 1.0
        else:  # JPEG's reduced decoding: a fraction of the cost of a full decode
            img, factor = load_rgb_reduced(data, max_pixels=self.max_pixels, side=side)
        # A usable selfie face is large: a quick pass on a small copy finds it at a fraction
        # of the cost; only when it finds none or several does the thorough photo pass run,
        # so that a small face is reported as too small rather than missing, and every face
        # of a group is counted.
        found = self.detector.detect_quick(img) if strict else []
        if len(found) != 1:
            found = self.detector.detect(img, min_face_px=max(8, round(self.photo_min_face_px / factor)))
        if not found:
            raise SelfieRejected(NO_FACE_MESSAGE, code="no_face")
        sure = [face for face in found if face.score >= MIN_SELFIE_SCORE]
        if strict and not sure:
            raise SelfieRejected(_HIDDEN, code="face_hidden")
        found = sure or found
        if strict and len(found) > 1:
            raise SelfieRejected(
                MULTIPLE_FACES_MESSAGE.format(count=len(found)),
                code="multiple_faces",
                faces_found=len(found),
            )
        face = max(found, key=lambda item: item.box.width * item.box.height)
        quality = face_quality(img, face.box) | pose(face) | occlusion(np.asarray(img), face)
        quality["face_px"] *= factor  # in the uploaded image's pixels
        if strict:
            self._check(quality)
        (descriptor,) = self.recognizer.describe(np.asarray(img), [face])
        return SelfieAnalysis(
            face=DetectedFace(box=_scaled(face.box, factor), descriptor=descriptor),
            faces_found=len(found),
            quality=quality,
        )

    def _check(self, quality: dict[str, float]) -> None:
        if quality["face_px"] < self.min_face_px:
            raise SelfieRejected(FACE_TOO_SMALL_MESSAGE, code="face_too_small")
        hidden = (
            quality.get("landmarks_inside", 1.0) < 1
            or quality.get("eyes_luma", 1.0) < MAX_EYES_DARKNESS
            or quality.get("lower_luma", 0.0) > MAX_LOWER_FACE_LUMA
            or quality.get("lower_chroma", 0.0) > MAX_LOWER_FACE_CHROMA
        )
        if hidden:
            raise SelfieRejected(_HIDDEN, code="face_hidden")
        if abs(quality.get("yaw", 0.0)) > MAX_SELFIE_YAW:
            raise SelfieRejected(_TURNED, code="face_turned")
        if quality["sharpness"] < self.min_sharpness:
            raise SelfieRejected(_TOO_BLURRY, code="too_blurry")
        if quality["brightness"] < self.min_brightness:
            raise SelfieRejected(_TOO_DARK, code="too_dark")

    def index_photo(self, data: bytes) -> list[DetectedFace]:
        """Every face in the photo, left to right, with descriptors (possibly an empty list)."""
        return self.index_image(load_rgb(data, max_pixels=self.max_pixels))

    def index_image(self, img: Image.Image) -> list[DetectedFace]:
        """:meth:`index_photo` of an image already decoded (upright RGB, full size)."""
        found = sorted(
            self.detector.detect(img, min_face_px=self.photo_min_face_px),
            key=lambda item: (item.box.left, item.box.top),
        )
        descriptors = self.recognizer.describe(np.asarray(img), found)
        return [
            DetectedFace(box=face.box, descriptor=descriptor)
            for face, descriptor in zip(found, descriptors, strict=True)
        ]


def _scaled(box: FaceBox, factor: float) -> FaceBox:
    if factor == 1.0:
        return box
    return FaceBox(*(round(v * factor) for v in (box.left, box.top, box.right, box.bottom)))


def build_engine(
    *,
    detector: str,
    recognizer: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    photo_min_face_px: int = 36,
    detect_max_side: int = 4096,
    upsample: int = 0,
) -> LocalEngine:
    """The engine named by the settings (``FACE_DETECTOR``, ``FACE_RECOGNIZER``);
    ``detect_max_side`` and ``upsample`` are HOG's."""
    det: Detector
    if detector == "yunet":
        det = YuNetDetector()
    elif detector == "hog":
        det = HogDetector(max_side=detect_max_side, upsample=upsample)
    else:
        raise ValueError(f"unknown face detector {detector!r}")
    return LocalEngine(
        detector=det,
        recognizer=RECOGNIZERS[recognizer](),
        max_pixels=max_pixels,
        photo_min_face_px=photo_min_face_px,
    )


class LocalDlibEngine(LocalEngine):
    """dlib alone: HOG detector, 5-point landmarks, ResNet descriptors (``FACE_DETECTOR=hog
    FACE_RECOGNIZER=dlib``, the fallback that needs only ``face-recognition-models``)."""

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detect_max_side: int = 4096,
        upsample: int = 0,
        **options: Any,
    ) -> None:
        if detect_max_side < 80 or not 0 <= upsample <= 3:
            raise ValueError("invalid LocalDlibEngine settings")
        super().__init__(
            detector=HogDetector(max_side=detect_max_side, upsample=upsample),
            recognizer=DlibRecognizer(),
            max_pixels=max_pixels,
            **options,
        )
