"""Decoding, validation and normalisation of uploaded images; no face logic and no dlib.

This module owns which image formats are accepted, the pixel limit, turning any accepted file
into an upright 8-bit RGB image, thumbnails, and the metadata-free copy of an original that is
served back to users. Every failure Pillow raises on untrusted bytes is mapped to
``UnsupportedMediaType`` (415, ``unsupported_format``) or ``PayloadTooLarge`` (413,
``image_too_large``); no Pillow exception escapes.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps

from app.core.config import DEFAULT_MAX_IMAGE_PIXELS, get_settings
from app.core.errors import PayloadTooLarge, UnsupportedMediaType

DEFAULT_MAX_PIXELS = DEFAULT_MAX_IMAGE_PIXELS

#: Formats as Pillow names them; pillow-heif reports HEIC and HEIF files as "HEIF".
ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})

# Phone cameras often write JPEGs with a Multi-Picture index, which Pillow reports as "MPO";
# they are ordinary JPEGs to users, so they are accepted and reported as JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}
# Only these parsers ever see untrusted bytes (Pillow would otherwise try every plugin it has).
_PARSERS = ("JPEG", "PNG", "WEBP", "HEIF")  # the JPEG parser also yields MPO

#: File extension under which an accepted upload of each format is stored.
FILE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
_SERVED_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_PNG_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "P", "RGB", "RGBA"})
# Colour spaces whose ICC profile still describes the pixels after conversion to RGB.
_RGB_LIKE_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_WHITE = (255, 255, 255)

_ACCEPTED_HINT = "Upload a JPEG, PNG, WebP or HEIC photo."
_DECODE_FAILED = (
    "The image could not be decoded; the file may be damaged or incomplete. "
    "Export or save the photo again and re-upload it."
)

_heif_lock = threading.Lock()
_heif_registered = False


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a cheap probe learns: format, upright size (after EXIF orientation) and the EXIF
    orientation itself (1: stored upright)."""

    format: str
    width: int
    height: int
    orientation: int = 1


def register_heif() -> None:
    """Teach Pillow to open HEIC/HEIF files (idempotent and thread-safe)."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if not _heif_registered:
            from pillow_heif import register_heif_opener

            # Thumbnails, depth maps and auxiliary images are never used; skip loading them.
            register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _heif_registered = True


def probe_image(data: bytes | IO[bytes], *, max_pixels: int) -> ImageInfo:
    """Identify the format and size of ``data`` (bytes, or a seekable binary file, left
    rewound) without decoding its pixels.

    Raises ``UnsupportedMediaType`` (``unsupported_format``) for anything that is not a JPEG,
    PNG, WebP or HEIC/HEIF image (including garbage and truncated headers), and
    ``PayloadTooLarge`` (``image_too_large``) when width x height exceeds ``max_pixels``.
    """
    try:
        _, info = _open(data, max_pixels=max_pixels)
    finally:
        if not isinstance(data, bytes):
            data.seek(0)
    return info


def load_rgb(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode ``data`` into an upright, 8-bit RGB image.

    Transparency is composited on white, 16-bit greyscale is scaled (not clipped) to 8 bits,
    CMYK and palette images are converted. The result's ``info`` holds at most the ICC
    profile (kept only when it still describes RGB pixels); all other metadata is dropped.
    """
    im, _ = _open(data, max_pixels=max_pixels)
    return _to_rgb(_decode_upright(im))


def load_rgb_reduced(data: bytes, *, max_pixels: int, side: int) -> tuple[Image.Image, float]:
    """:func:`load_rgb`, a JPEG decoded at a reduced scale (libjpeg's DCT scaling: 1/2, 1/4,
    1/8) when its long side is still at least ``side`` at that scale: a fraction of the cost
    of a full decode. Other formats cannot be decoded reduced: they are then box-reduced by
    a whole factor that keeps the long side at least ``side``, so what follows (the face
    search) costs the same for every format. Returns the image and the factor
    original/decoded."""
    im, info = _open(data, max_pixels=max_pixels)
    long_side = max(info.width, info.height)
    if im.format in ("JPEG", "MPO") and long_side > side:
        im.draft("RGB", (max(1, im.width * side // long_side), max(1, im.height * side // long_side)))
    img = _to_rgb(_decode_upright(im))
    step = max(img.size) // max(1, side)
    if step >= 2:
        img = img.reduce(step)
    return img, long_side / max(img.size)


def probe_selfie(data: bytes, *, max_pixels: int, max_decode_pixels: int) -> ImageInfo:
    """:func:`probe_image` with a selfie's bounds on the cost of decoding it: no 16-bit (or
    32-bit) image, and at most ``max_decode_pixels`` for a format that must be decoded in full
    (a JPEG is decoded reduced, so it may have up to ``max_pixels``). A phone's selfie passes:
    an 8-bit JPEG or HEIC of 12 MP. Raises ``UnsupportedMediaType`` (``unsupported_format``)
    or ``PayloadTooLarge`` (``image_too_large``)."""
    im, info = _open(data, max_pixels=max_pixels)
    if im.mode in _SIXTEEN_BIT_MODES or im.mode == "F":
        raise UnsupportedMediaType(
            "This image has 16 or 32 bits per channel, which a selfie does not need and which is "
            "costly to decode. Save it as an ordinary (8-bit) JPEG or PNG and upload it again.",
            code="unsupported_format",
        )
    if info.format != "JPEG" and info.width * info.height > max_decode_pixels:
        limit = f"{max_decode_pixels / 1_000_000:g} megapixels"
        raise PayloadTooLarge(
            f"The image is {info.width}x{info.height} pixels; a {info.format} selfie may have at most "
            f"{limit} (a JPEG more). Upload a smaller version, or a JPEG.",
            code="image_too_large",
        )
    return info


def downscale(img: Image.Image, *, max_side: int) -> tuple[Image.Image, float]:
    """Shrink ``img`` so its long side is at most ``max_side``.

    Returns the image (the same object if it was already small enough) and the factor
    original/new, so coordinates found on the result map back by multiplying.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    width, height = img.size
    long_side = max(width, height)
    if long_side <= max_side:
        return img, 1.0
    scale = max_side / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return small, long_side / max(size)


def make_thumbnail(img: Image.Image, *, max_side: int = 480, quality: int = 82) -> bytes:
    """JPEG bytes of ``img`` fitted within ``max_side`` x ``max_side``, without any EXIF."""
    rgb = img if img.mode == "RGB" else _to_rgb(img)
    if max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        thumb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        thumb = rgb.copy()
    return _encode(thumb, "JPEG", icc_profile=rgb.info.get("icc_profile"), quality=quality)


def sanitized_original(
    data: bytes, img_format: str, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[bytes, str]:
    """Re-encode an upload so it can be served: upright pixels, no EXIF (so no GPS), no XMP.

    Returns ``(bytes, media_type)``. JPEG stays JPEG (quality 90), PNG stays PNG (transparency
    and 16-bit depth kept), WebP stays WebP (quality 90), HEIF becomes JPEG. Only the first
    frame of an animated file is kept. Re-encoding, rather than cutting metadata segments out,
    also drops anything appended to the file (e.g. the second image and its EXIF in an MPO).
    ``img_format`` is the format ``probe_image`` reported for the same bytes.
    """
    expected = _FORMAT_ALIASES.get(img_format.upper(), img_format.upper())
    im, info = _open(data, max_pixels=max_pixels)
    if info.format != expected:
        raise ValueError(f"data is {info.format}, not {expected}")
    source_mode = im.mode
    icc_profile = im.info.get("icc_profile") if source_mode in _RGB_LIKE_MODES else None
    upright = _decode_upright(im)

    if expected == "PNG":
        transparency = upright.info.get("transparency")
        if upright.mode == "I":
            upright = _sixteen_bit_to_l(upright)
        elif upright.mode not in _PNG_MODES:
            upright = upright.convert("RGBA" if _has_alpha(upright) else "RGB")
        if upright.mode not in ("P", "L", "RGB", "1"):
            transparency = None
        return (
            _encode(upright, "PNG", icc_profile=icc_profile, transparency=transparency),
            _SERVED_MEDIA_TYPES["PNG"],
        )
    if expected == "WEBP":
        mode = "RGBA" if _has_alpha(upright) else "RGB"
        out = upright if upright.mode == mode else upright.convert(mode)
        return (
            _encode(out, "WEBP", icc_profile=icc_profile, quality=90),
            _SERVED_MEDIA_TYPES["WEBP"],
        )
    # JPEG and HEIF are served as JPEG; greyscale stays greyscale, CMYK becomes RGB.
    out = upright if upright.mode in ("L", "RGB") else _to_rgb(upright)
    return _encode(out, "JPEG", icc_profile=icc_profile, quality=90), _SERVED_MEDIA_TYPES["JPEG"]


def served_jpeg(img: Image.Image) -> tuple[bytes, str]:
    """The served copy of a JPEG or HEIF photo made from its already decoded upright RGB
    image (what :func:`sanitized_original` makes of it, without decoding it a second time):
    JPEG quality 90, no EXIF or XMP, the ICC profile kept."""
    info = img.info
    try:
        return _encode(img, "JPEG", icc_profile=info.get("icc_profile"), quality=90), _SERVED_MEDIA_TYPES[
            "JPEG"
        ]
    finally:
        img.info = info


# --------------------------------------------------------------------------------------------


def _open(data: bytes | IO[bytes], *, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    source: IO[bytes]
    if isinstance(data, bytes):
        empty, source = not data, io.BytesIO(data)
    else:
        empty, source = data.seek(0, io.SEEK_END) == 0, data
        data.seek(0)
    if empty:
        raise UnsupportedMediaType(f"The file is empty. {_ACCEPTED_HINT}", code="unsupported_format")
    register_heif()
    try:
        with warnings.catch_warnings():
            # The pixel limit is enforced below against max_pixels; Pillow's global default is
            # not relied upon, and a failed parser attempt is not worth a log line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            im = Image.open(source, formats=_PARSERS)
    except Image.DecompressionBombError:
        raise _too_large(None, None, max_pixels) from None
    except MemoryError:
        raise
    except Exception:  # UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
        raise UnsupportedMediaType(
            f"This file is not a supported image. {_ACCEPTED_HINT}", code="unsupported_format"
        ) from None

    fmt = _FORMAT_ALIASES.get(im.format or "", im.format or "")
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedMediaType(
            f"{fmt or 'This'} images are not supported. {_ACCEPTED_HINT}",
            code="unsupported_format",
        )
    width, height = im.size
    if width <= 0 or height <= 0:
        raise UnsupportedMediaType(f"The image has no pixels. {_ACCEPTED_HINT}", code="unsupported_format")
    orientation = _orientation(im)
    if orientation >= 5:  # orientations 5-8 swap the axes
        width, height = height, width
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
    budget = get_settings().image_decode_max_mb * 1024 * 1024
    if decode_bytes(im.mode, width * height) > budget:
        raise PayloadTooLarge(
            f"The image is {width}x{height} pixels of {im.mode}: decoding it would take more memory "
            "than allowed. Upload a smaller or 8-bit version.",
            code="image_too_large",
        )
    return im, ImageInfo(format=fmt, width=width, height=height, orientation=orientation)


# Bytes per pixel of the decoded image in each mode, and of what turning it into RGB adds.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_SIXTEEN_BIT_EXTRA = 4 + 1  # a 32-bit view of a strip at most, and the 8-bit copy


def decode_bytes(mode: str, pixels: int) -> int:
    """Peak memory, roughly, of decoding an image of ``pixels`` in ``mode`` to 8-bit RGB."""
    decoded = _MODE_BYTES.get(mode, 4)
    extra = _SIXTEEN_BIT_EXTRA if mode in _SIXTEEN_BIT_MODES or mode == "F" else 0
    return pixels * (decoded + extra + 3)


def _too_large(width: int | None, height: int | None, max_pixels: int) -> PayloadTooLarge:
    limit = f"{max_pixels / 1_000_000:g} megapixels"
    if width is None or height is None:
        message = f"The image is larger than the limit of {limit}."
    else:
        message = f"The image is {width}x{height} pixels; the limit is {limit}."
    return PayloadTooLarge(f"{message} Upload a smaller version.", code="image_too_large")


def _orientation(im: Image.Image) -> int:
    # A PNG's eXIf chunk may follow the pixel data, and reading it would decode the image.
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # malformed EXIF: treat the image as stored upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _decode_upright(im: Image.Image) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except MemoryError:
        raise
    except Exception:  # truncated or corrupt pixel data
        raise UnsupportedMediaType(_DECODE_FAILED, code="unsupported_format") from None
    with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as stored
        ImageOps.exif_transpose(im, in_place=True)
    return im


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    # Mode "I" from a 16-bit PNG holds 0..65535; scale the full range rather than clip at 255.
    # In strips of about a megapixel: whole-image int64 arithmetic took 8 bytes a pixel per
    # temporary (over 1 GB for a 7000x7000 PNG of 95 KB).
    values = np.asarray(im)
    out = np.empty(values.shape, dtype=np.uint8)
    rows = max(1, (1 << 20) // max(1, values.shape[1]))
    for top in range(0, values.shape[0], rows):
        strip = np.clip(values[top : top + rows], 0, 65535).astype(np.uint32)
        out[top : top + rows] = (strip * 255 + 32767) // 65535
    return Image.fromarray(out)


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    icc_profile = im.info.get("icc_profile") if mode in _RGB_LIKE_MODES else None
    if mode == "RGB":
        out = im
    elif mode in _SIXTEEN_BIT_MODES:
        out = _sixteen_bit_to_l(im).convert("RGB")
    elif mode == "F":
        out = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8)).convert("RGB")
    elif _has_alpha(im):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", im.size, _WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
    else:  # L, 1, P without transparency, CMYK, YCbCr, LAB, ...
        out = im.convert("RGB")
    out.info = {"icc_profile": icc_profile} if icc_profile else {}
    return out


def _encode(img: Image.Image, fmt: str, *, icc_profile: bytes | None, **options: object) -> bytes:
    # Savers fall back to img.info for some metadata (e.g. JPEG comments, PNG ICC), so the
    # image is saved with an empty info dict and only what is passed explicitly gets written.
    img.info = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    options = {key: value for key, value in options.items() if value is not None}
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()
