"""Helpers shared by the Azure Face tests: a provider built by hand against the fake, and
test images (JPEG encoding, upright fixture photos)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageOps

from app.faces.providers.azure import AzureProvider
from tests.fakes.azure_face import FakeAzureFace
from tools.paths import FACES


def direct(fake: FakeAzureFace, **options: Any) -> AzureProvider:
    """A provider built by hand (its own circuit breaker), for the reliability tests."""
    options = {"timeout": 5.0, "max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, **options}
    return AzureProvider(endpoint=fake.endpoint, key=fake.key, **options)


def jpeg(img: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=92, **options)
    return out.getvalue()


def fixture_image(name: str) -> Image.Image:
    with Image.open(FACES / name) as img:
        return ImageOps.exif_transpose(img).convert("RGB")
