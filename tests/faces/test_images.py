"""Behaviour of image decoding, validation, thumbnails and served originals."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile

from app.core.errors import PayloadTooLarge, UnsupportedMediaType
from app.faces.images import (
    ALLOWED_FORMATS,
    ImageInfo,
    downscale,
    load_rgb,
    make_thumbnail,
    probe_image,
    register_heif,
    sanitized_original,
)

pytestmark = pytest.mark.once

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "faces"
LIMIT = 40_000_000


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    if fmt == "HEIF":
        register_heif()
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 7.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 42.0)
    return exif


@pytest.fixture(scope="module")
def obama() -> Image.Image:
    with Image.open(FIXTURES / "obama.jpg") as img:
        return img.convert("RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


# --- accepted formats and probing ---------------------------------------------------------


def test_allowed_formats_are_jpeg_png_webp_and_heif() -> None:
    assert {"JPEG", "PNG", "WEBP", "HEIF"} == ALLOWED_FORMATS


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_each_accepted_format_is_probed_with_its_format_and_size(obama: Image.Image, fmt: str) -> None:
    data = encode(obama, fmt)
    assert probe_image(data, max_pixels=LIMIT) == ImageInfo(fmt, 910, 1137)


def test_probe_reports_the_upright_size_of_an_exif_rotated_jpeg(obama: Image.Image) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    data = encode(obama.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)
    assert probe_image(data, max_pixels=LIMIT) == ImageInfo("JPEG", 910, 1137, orientation=6)


def test_real_fixture_photos_are_all_accepted() -> None:
    for path in sorted(FIXTURES.glob("*")):
        if path.suffix in (".jpg", ".png"):
            info = probe_image(path.read_bytes(), max_pixels=LIMIT)
            assert info.format in ALLOWED_FORMATS


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not an image",
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
        b"\x89PNG\r\n\x1a\n\x00\x00",  # truncated header
        b"\xff\xd8\xff",  # a JPEG marker and nothing else
        bytes(range(256)) * 16,
    ],
    ids=["empty", "text", "pdf", "png-header-only", "jpeg-marker-only", "garbage"],
)
def test_non_image_is_refused_with_unsupported_format(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        probe_image(data, max_pixels=LIMIT)
    assert caught.value.status_code == 415
    assert caught.value.code == "unsupported_format"
    assert "JPEG, PNG, WebP or HEIC" in caught.value.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_images_in_other_formats_are_refused_with_unsupported_format(obama: Image.Image, fmt: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        load_rgb(encode(obama, fmt), max_pixels=LIMIT)
    assert caught.value.code == "unsupported_format"


def test_truncated_image_is_refused_as_could_not_be_decoded() -> None:
    data = fixture_bytes("obama.jpg")
    with pytest.raises(UnsupportedMediaType) as caught:
        load_rgb(data[: len(data) // 2], max_pixels=LIMIT)
    assert caught.value.code == "unsupported_format"
    assert "could not be decoded" in caught.value.message


# --- pixel limit --------------------------------------------------------------------------


def test_image_over_the_pixel_limit_is_refused_with_its_size_and_the_limit() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        probe_image(fixture_bytes("obama.jpg"), max_pixels=1_000_000)
    assert caught.value.status_code == 413
    assert caught.value.code == "image_too_large"
    assert "910x1137 pixels" in caught.value.message
    assert "1 megapixels" in caught.value.message


@pytest.mark.parametrize(("width", "height"), [(8000, 6000), (60_000, 60_000)], ids=["48MP", "3600MP"])
def test_decompression_bomb_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(PayloadTooLarge) as caught:
        load_rgb(png_header_only(width, height), max_pixels=LIMIT)
    assert caught.value.code == "image_too_large"
    assert "40 megapixels" in caught.value.message


def test_pixel_limit_holds_even_with_pillows_own_bomb_check_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(PayloadTooLarge):
        probe_image(png_header_only(8000, 6000), max_pixels=LIMIT)


# --- decoding to upright 8-bit RGB --------------------------------------------------------


def test_exif_rotated_jpeg_is_loaded_upright(obama: Image.Image) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(obama.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)
    img = load_rgb(data, max_pixels=LIMIT)
    assert img.size == obama.size
    assert mean_abs_diff(img, obama) < 4


def test_cmyk_jpeg_and_16_bit_png_are_converted_to_rgb(obama: Image.Image) -> None:
    cmyk = load_rgb(encode(obama.convert("CMYK"), "JPEG", quality=95), max_pixels=LIMIT)
    assert cmyk.mode == "RGB"
    assert mean_abs_diff(cmyk, obama) < 6

    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    sixteen = load_rgb(encode(Image.fromarray(ramp), "PNG"), max_pixels=LIMIT)
    pixels = np.asarray(sixteen)
    assert sixteen.mode == "RGB"
    assert pixels.min() == 0 and pixels.max() == 255
    # Scaled, not clipped: mid-grey in 16 bits is mid-grey in 8 bits.
    assert abs(int(pixels[32, 128, 0]) - 128) <= 2
    assert len(np.unique(pixels[..., 0])) == 256


def test_transparent_areas_are_composited_on_white() -> None:
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (10, 0, 20, 10))  # right half: transparent black
    img = load_rgb(encode(rgba, "PNG"), max_pixels=LIMIT)
    assert img.mode == "RGB"
    assert img.getpixel((2, 5)) == (255, 0, 0)
    assert img.getpixel((15, 5)) == (255, 255, 255)

    real = load_rgb(fixture_bytes("32bit.png"), max_pixels=LIMIT)
    assert real.mode == "RGB" and real.size == (626, 1200)


def test_palette_and_greyscale_alpha_pngs_are_composited_on_white() -> None:
    palette = Image.new("P", (4, 1))
    palette.putpalette([0, 0, 255, 0, 0, 0])
    palette.putdata([0, 0, 1, 1])
    palette_img = load_rgb(encode(palette, "PNG", transparency=1), max_pixels=LIMIT)
    assert palette_img.getpixel((0, 0)) == (0, 0, 255)
    assert palette_img.getpixel((3, 0)) == (255, 255, 255)

    grey = Image.new("LA", (2, 1), (40, 255))
    grey.putpixel((1, 0), (40, 0))
    grey_img = load_rgb(encode(grey, "PNG"), max_pixels=LIMIT)
    assert grey_img.getpixel((0, 0)) == (40, 40, 40)
    assert grey_img.getpixel((1, 0)) == (255, 255, 255)


def test_greyscale_jpeg_and_heic_are_loaded_as_rgb(obama: Image.Image) -> None:
    grey = load_rgb(encode(obama.convert("L"), "JPEG"), max_pixels=LIMIT)
    assert grey.mode == "RGB" and grey.size == obama.size
    heic = load_rgb(encode(obama, "HEIF", quality=90), max_pixels=LIMIT)
    assert heic.mode == "RGB" and heic.size == obama.size
    assert mean_abs_diff(heic, obama) < 6


def test_loaded_image_keeps_no_exif() -> None:
    obama_bytes = fixture_bytes("obama.jpg")
    img = load_rgb(obama_bytes, max_pixels=LIMIT)
    assert set(img.info) <= {"icc_profile"}


# --- downscaling and thumbnails -----------------------------------------------------------


def test_downscale_returns_the_factor_that_maps_coordinates_back(obama: Image.Image) -> None:
    small, factor = downscale(obama, max_side=500)
    assert max(small.size) == 500
    assert small.width * factor == pytest.approx(obama.width, abs=factor)
    assert small.height * factor == pytest.approx(obama.height, abs=factor)


def test_small_image_is_not_upscaled(obama: Image.Image) -> None:
    same, factor = downscale(obama, max_side=2000)
    assert same is obama and factor == 1.0


def test_thumbnail_is_at_most_480_px() -> None:
    for name in ("obama3.jpg", "biden.jpg", "t1.jpg", "Tom_Hanks_54745.png", "32bit.png"):
        img = load_rgb(fixture_bytes(name), max_pixels=LIMIT)
        with Image.open(io.BytesIO(make_thumbnail(img))) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) == min(480, max(img.size))
            assert abs(thumb.width / thumb.height - img.width / img.height) < 0.02


def test_thumbnail_has_no_exif(obama: Image.Image) -> None:
    img = load_rgb(encode(obama, "JPEG", exif=gps_exif()), max_pixels=LIMIT)
    thumb_bytes = make_thumbnail(img, max_side=200)
    assert b"Exif\x00\x00" not in thumb_bytes
    with Image.open(io.BytesIO(thumb_bytes)) as thumb:
        assert "exif" not in thumb.info
        assert max(thumb.size) == 200


# --- served originals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type", "served_format"),
    [
        ("JPEG", "image/jpeg", "JPEG"),
        ("PNG", "image/png", "PNG"),
        ("WEBP", "image/webp", "WEBP"),
        ("HEIF", "image/jpeg", "JPEG"),
    ],
)
def test_served_original_has_no_gps(
    obama: Image.Image, fmt: str, media_type: str, served_format: str
) -> None:
    if fmt == "HEIF":
        # HEIF keeps orientation in the container (irot/imir), which libheif applies when
        # decoding; pillow-heif neutralises the EXIF tag, so an upright image is uploaded.
        upload = encode(obama, fmt, exif=gps_exif(1))
    else:
        upload = encode(obama.transpose(Image.Transpose.ROTATE_90), fmt, exif=gps_exif(6))
    with Image.open(io.BytesIO(upload)) as original:  # the fixture really carries GPS
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)

    served, served_type = sanitized_original(upload, probe_image(upload, max_pixels=LIMIT).format)

    assert served_type == media_type
    assert b"Exif\x00\x00" not in served and b"TestPhone" not in served
    with Image.open(io.BytesIO(served)) as img:
        assert img.format == served_format
        assert not img.getexif()
        assert not img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        # Orientation is baked into the pixels, so the served image looks right without EXIF.
        assert img.size == obama.size
        assert mean_abs_diff(img.convert("RGB"), obama) < 8


def test_served_original_drops_xmp_and_comments(obama: Image.Image) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>52.37,4.89</secret></x:xmpmeta>'
    upload = encode(obama, "JPEG", xmp=xmp, comment=b"taken at home")
    served, _ = sanitized_original(upload, "JPEG")
    assert b"52.37" not in served and b"taken at home" not in served


def test_served_png_keeps_transparency_and_16_bit_depth() -> None:
    rgba = Image.new("RGBA", (8, 8), (0, 128, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 4, 8))
    served, media_type = sanitized_original(encode(rgba, "PNG"), "PNG")
    assert media_type == "image/png"
    with Image.open(io.BytesIO(served)) as img:
        pixel = img.getpixel((0, 0))
        assert img.mode == "RGBA" and isinstance(pixel, tuple) and pixel[3] == 0

    ramp = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    served16, _ = sanitized_original(encode(Image.fromarray(ramp), "PNG"), "PNG")
    with Image.open(io.BytesIO(served16)) as img:
        assert img.mode.startswith("I")
        assert np.array_equal(np.asarray(img).astype(np.uint16), ramp)


def test_served_original_must_match_the_probed_format(obama: Image.Image) -> None:
    with pytest.raises(ValueError):
        sanitized_original(encode(obama, "PNG"), "JPEG")
