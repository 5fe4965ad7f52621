"""Face providers behind one contract (:mod:`.base`): ``local`` (YuNet and SFace by default,
or dlib; the default provider) and ``azure`` (Azure Face, ``FACE_PROVIDER=azure``; its SDK is
imported only when selected).

``get_face_provider()`` is called in face-worker processes; web processes never call it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from app.core.config import Settings, get_settings
from app.faces.providers.base import FaceProvider

if TYPE_CHECKING:
    from app.faces.recognizers import MatchDefaults


def match_settings(settings: Settings) -> MatchDefaults:
    """The local matching distances: the settings where set, else the recognizer's defaults."""
    # Imported here: the recognizers import the contract (.base), which imports this package.
    from app.faces.recognizers import RECOGNIZERS, MatchDefaults

    defaults = RECOGNIZERS[settings.face_recognizer].defaults
    return MatchDefaults(
        threshold=settings.face_match_threshold or defaults.threshold,
        expand=defaults.expand if settings.face_match_expand is None else settings.face_match_expand,
        guard=defaults.guard if settings.face_match_guard is None else settings.face_match_guard,
    )


def configured_model(settings: Settings) -> str:
    """The model of the signatures the configured provider makes (without building it)."""
    if settings.face_provider == "azure":
        return "azure"
    from app.faces.recognizers import model_of

    return model_of(settings.face_recognizer)


def build_provider(settings: Settings) -> FaceProvider:
    if settings.face_provider == "azure":
        from app.faces.providers.azure import AzureProvider

        return AzureProvider.from_settings(settings)
    from app.faces.engine import build_engine
    from app.faces.providers.local import LocalProvider

    distances = match_settings(settings)
    return LocalProvider(
        engine=build_engine(
            detector=settings.face_detector,
            recognizer=settings.face_recognizer,
            max_pixels=settings.max_image_pixels,
            detect_max_side=settings.face_detect_max_side,
            upsample=settings.face_detect_upsample,
            photo_min_face_px=settings.face_photo_min_px,
        ),
        threshold=distances.threshold,
        expand=distances.expand,
        guard=distances.guard,
    )


@lru_cache
def get_face_provider() -> FaceProvider:
    return build_provider(get_settings())
