"""What we send Azure Face for an image: the upload itself when Azure can take it (JPEG or
PNG, at most 6 MB and 4096 px a side, stored upright), otherwise an upright JPEG copy made
small enough, with the factor that maps its pixels back to the original's."""

from __future__ import annotations

import io
from dataclasses import dataclass

from app.faces.images import DEFAULT_MAX_PIXELS, downscale, load_rgb, probe_image

#: Azure's limits on an uploaded image.
AZURE_MAX_BYTES = 6 * 1024 * 1024
AZURE_MAX_SIDE = 4096
_AZURE_FORMATS = frozenset({"JPEG", "PNG"})


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """The bytes sent to Azure and the factor mapping their pixels back to the original's."""

    data: bytes
    factor: float = 1.0


def prepare_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[PreparedImage, int, int]:
    """What to send Azure for ``data``, and the upright original's width and height.

    Raises ``UnsupportedMediaType`` / ``PayloadTooLarge`` like :mod:`app.faces.images`.
    """
    info = probe_image(data, max_pixels=max_pixels)
    if (
        info.format in _AZURE_FORMATS
        and len(data) <= AZURE_MAX_BYTES
        and max(info.width, info.height) <= AZURE_MAX_SIDE
        and info.orientation == 1
    ):
        return PreparedImage(data), info.width, info.height
    img = load_rgb(data, max_pixels=max_pixels)
    side = AZURE_MAX_SIDE
    while True:
        small, factor = downscale(img, max_side=side)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=90)
        if out.tell() <= AZURE_MAX_BYTES or side <= 512:
            return PreparedImage(out.getvalue(), factor), info.width, info.height
        side = int(side * 0.75)
