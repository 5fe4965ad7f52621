"""The local face engine: dlib on this machine's CPU (HOG detector, 5-point landmarks,
ResNet 128-d descriptors), offline, with the models of ``face_recognition_models``.

This module owns face detection, the selfie acceptance rules (one usable face, large, sharp
and bright enough) and face descriptors; :mod:`app.faces.providers.local` turns it into a
provider. The engine is a plain synchronous object meant to run inside worker processes
(dlib holds the GIL); the caller owns the processes. Importing this module never imports
dlib: models load on first use, once per process.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.faces.images import DEFAULT_MAX_PIXELS, downscale, load_rgb
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

#: Side of the square greyscale face crop the sharpness and brightness metrics are taken on.
QUALITY_CROP_PX = 150

_TOO_BLURRY = "The photo is too blurry. Hold the phone steady, wipe the camera lens and try again."
_TOO_DARK = "The photo is too dark. Move somewhere brighter or face a window or a light, and try again."


@dataclass(frozen=True, slots=True)
class _DlibModels:
    detector: Any
    shape_predictor: Any
    encoder: Any


_models: _DlibModels | None = None
_models_lock = threading.Lock()


def _model_path(filename: str) -> str:
    # Same files face_recognition_models' *_location() helpers return, found without importing
    # the package, whose __init__ needs pkg_resources (deprecated and absent from new setuptools).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise RuntimeError(f"face model file is missing: {path}")
    return str(path)


def _load_models() -> _DlibModels:
    global _models
    if _models is None:
        with _models_lock:
            if _models is None:
                import dlib

                _models = _DlibModels(
                    detector=dlib.get_frontal_face_detector(),
                    shape_predictor=dlib.shape_predictor(_model_path("shape_predictor_5_face_landmarks.dat")),
                    encoder=dlib.face_recognition_model_v1(
                        _model_path("dlib_face_recognition_resnet_model_v1.dat")
                    ),
                )
    return _models


# Photos whose long side is under half of this get one doubling before detection.
SMALL_PHOTO_REFERENCE = 2560

# A face whose aligned chip is darker than this (mean, 0-255) has its levels stretched before
# its descriptor is computed: the ResNet is not invariant to exposure, and on photos dimmed to
# 35 % it lifts gallery-aware recall from 0.854 to 0.917 (docs/FACES.md). Faces lit normally
# keep exactly the descriptor they always had, so stored descriptors stay comparable.
DARK_CHIP_MEAN = 100.0


def _lit(chip: np.ndarray) -> np.ndarray:
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


def face_quality(img: Image.Image, box: FaceBox) -> dict[str, float]:
    """Size, sharpness and brightness of the face in ``box`` (see :class:`LocalDlibEngine`)."""
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


class LocalDlibEngine:
    """dlib on the local CPU: HOG face detector, 5-point landmarks, ResNet 128-d descriptors.

    Compare descriptors by euclidean distance; the same person is usually below 0.5 (dlib's
    own guidance is 0.6). Models ship in ``face_recognition_models`` and are loaded on first
    use, once per process; nothing is downloaded. Detection runs on a copy downscaled to
    ``detect_max_side``; landmarks and descriptors are computed on the full-resolution image.

    Settings (keyword-only; docs/FACES.md has the measurements behind each default):
    ``max_pixels`` (``MAX_IMAGE_PIXELS``): larger images get 413 ``image_too_large``.
    ``detect_max_side`` (4096) and ``upsample`` (0): the detection copy; images whose long side
    is below ``min(detect_max_side, 2560) / 2`` get one extra doubling. ``selfie_detect_max_side`` (800):
    selfies are searched on a copy this size first, then with the full photo pass if that
    finds no face or several. ``min_face_px`` (80), ``min_sharpness`` (40.0),
    ``min_brightness`` (40.0): a strict selfie's face box, Laplacian variance and mean luma of
    its 150x150 greyscale crop.

    Selfie rules: no face -> ``no_face``; several faces -> ``multiple_faces`` when ``strict``,
    otherwise the largest face is used and the size, blur and darkness checks are skipped (the
    metrics are still reported in ``SelfieAnalysis.quality``). In strict mode the checks run
    in the order ``face_too_small``, ``too_blurry``, ``too_dark``.
    """

    name = "dlib-resnet-v1"
    descriptor_size = 128

    def __init__(
        self,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detect_max_side: int = 4096,
        upsample: int = 0,
        selfie_detect_max_side: int = 800,
        min_face_px: int = MIN_SELFIE_FACE_PX,
        min_sharpness: float = 40.0,
        min_brightness: float = 40.0,
    ) -> None:
        if max_pixels < 1 or detect_max_side < 80 or not 0 <= upsample <= 3 or min_face_px < 0:
            raise ValueError("invalid LocalDlibEngine settings")
        self.max_pixels = max_pixels
        self.detect_max_side = detect_max_side
        self.selfie_detect_max_side = selfie_detect_max_side
        self.upsample = upsample
        self.min_face_px = min_face_px
        self.min_sharpness = min_sharpness
        self.min_brightness = min_brightness

    def __repr__(self) -> str:
        return (
            f"LocalDlibEngine(max_pixels={self.max_pixels}, "
            f"detect_max_side={self.detect_max_side}, upsample={self.upsample}, "
            f"min_face_px={self.min_face_px}, min_sharpness={self.min_sharpness}, "
            f"min_brightness={self.min_brightness})"
        )

    def load_models(self) -> None:
        """Load the dlib models now (e.g. in a worker's initialiser) instead of on first use."""
        _load_models()

    def analyze_selfie(self, data: bytes, *, strict: bool) -> SelfieAnalysis:
        img = load_rgb(data, max_pixels=self.max_pixels)
        # A usable selfie face is large: a quick pass on a small copy finds it at a tenth of
        # the cost; only when it finds nothing does the thorough photo pass run, so that a
        # small face is reported as too small rather than missing.
        # Relaxed mode and refusals (no face; several faces, to count them all) take the
        # thorough pass.
        found = self._detect(img, max_side=self.selfie_detect_max_side, upsample=0) if strict else []
        if len(found) != 1:
            found = self._detect(img)
        if not found:
            raise SelfieRejected(NO_FACE_MESSAGE, code="no_face")
        if strict and len(found) > 1:
            raise SelfieRejected(
                MULTIPLE_FACES_MESSAGE.format(count=len(found)),
                code="multiple_faces",
                faces_found=len(found),
            )
        box, rect = max(found, key=lambda item: item[0].width * item[0].height)
        quality = face_quality(img, box)
        if strict:
            if quality["face_px"] < self.min_face_px:
                raise SelfieRejected(FACE_TOO_SMALL_MESSAGE, code="face_too_small")
            if quality["sharpness"] < self.min_sharpness:
                raise SelfieRejected(_TOO_BLURRY, code="too_blurry")
            if quality["brightness"] < self.min_brightness:
                raise SelfieRejected(_TOO_DARK, code="too_dark")
        (descriptor,) = self._describe(img, [rect])
        return SelfieAnalysis(
            face=DetectedFace(box=box, descriptor=descriptor),
            faces_found=len(found),
            quality=quality,
        )

    def index_photo(self, data: bytes) -> list[DetectedFace]:
        """Every face in the photo, left to right, with descriptors (possibly an empty list)."""
        img = load_rgb(data, max_pixels=self.max_pixels)
        found = sorted(self._detect(img), key=lambda item: (item[0].left, item[0].top))
        descriptors = self._describe(img, [rect for _, rect in found])
        return [
            DetectedFace(box=box, descriptor=descriptor)
            for (box, _), descriptor in zip(found, descriptors, strict=True)
        ]

    def _detect(
        self, img: Image.Image, *, max_side: int | None = None, upsample: int | None = None
    ) -> list[tuple[FaceBox, tuple[int, int, int, int]]]:
        """Face boxes clipped to the image, each with its unclipped rectangle for landmarks."""
        models = _load_models()
        if max_side is not None and upsample is not None:
            small, factor = downscale(img, max_side=max_side)
            rects = models.detector(np.asarray(small), upsample)
            return self._boxes(img, rects, factor)
        small, factor = downscale(img, max_side=self.detect_max_side)
        upsample = self.upsample
        if max(small.size) * 2 < min(self.detect_max_side, SMALL_PHOTO_REFERENCE):
            # Small uploads (under 1280 px by default) get one doubling, which finds faces
            # down to ~32 px and costs no more than detecting on a large photo; mid-size
            # photos are scanned as they are.
            upsample += 1
        rects = models.detector(np.asarray(small), upsample)
        return self._boxes(img, rects, factor)

    @staticmethod
    def _boxes(
        img: Image.Image, rects: Any, factor: float
    ) -> list[tuple[FaceBox, tuple[int, int, int, int]]]:
        found = []
        for rect in rects:
            # dlib rectangles are inclusive; scale the half-open box back to original pixels.
            left, top, right, bottom = (
                round(value * factor)
                for value in (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            )
            box = FaceBox(
                left=max(0, left),
                top=max(0, top),
                right=min(img.width, right),
                bottom=min(img.height, bottom),
            )
            if box.width > 0 and box.height > 0:
                found.append((box, (left, top, right, bottom)))
        return found

    def _describe(self, img: Image.Image, rects: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
        if not rects:
            return []
        import dlib

        models = _load_models()
        pixels = np.asarray(img)
        descriptors = []
        for left, top, right, bottom in rects:
            shape = models.shape_predictor(pixels, dlib.rectangle(left, top, right - 1, bottom - 1))
            # The aligned chip dlib's encoder would cut itself (same descriptor, bit for bit).
            chip = dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
            vector = np.asarray(models.encoder.compute_face_descriptor(_lit(chip)), dtype=np.float32)
            vector.setflags(write=False)
            descriptors.append(vector)
        return descriptors
