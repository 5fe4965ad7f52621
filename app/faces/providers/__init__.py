"""Face providers behind one contract (:mod:`.base`): ``local`` (dlib, the default) and
``azure`` (Azure Face, ``FACE_PROVIDER=azure``; its SDK is imported only when selected).

``get_face_provider()`` is called in face-worker processes; web processes never call it.
"""

from __future__ import annotations

from functools import lru_cache

from app.core.config import Settings, get_settings
from app.faces.providers.base import FaceProvider


def build_provider(settings: Settings) -> FaceProvider:
    if settings.face_provider == "azure":
        from app.faces.providers.azure import AzureProvider

        return AzureProvider.from_settings(settings)
    from app.faces.providers.local import LocalProvider

    return LocalProvider(
        threshold=settings.face_match_threshold,
        max_pixels=settings.max_image_pixels,
        expand=settings.face_match_expand,
        guard=settings.face_match_guard,
        detect_max_side=settings.face_detect_max_side,
        upsample=settings.face_detect_upsample,
    )


@lru_cache
def get_face_provider() -> FaceProvider:
    return build_provider(get_settings())
