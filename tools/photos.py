"""The fixture photos as bytes, the composites made of them, and the sets of photos that
tests, benchmarks and the load test upload to an event."""

from __future__ import annotations

import io
import json
import struct
import zlib

from PIL import Image, ImageOps

from tools.paths import DEVSET, FACES

#: Who is in each photo of :func:`gallery_photos`: A is Obama, B Biden, C Tom Hanks.
A_PHOTOS = {"a2.jpg", "a3.jpg", "a_rgba.png", "a_partial.jpg", "a_and_b.jpg"}
B_PHOTOS = {"b.jpg", "a_and_b.jpg"}
C_PHOTOS = {"c.png", "c_and_group.jpg"}


def fixture_bytes(name: str) -> bytes:
    """A photo of ``tests/fixtures/faces``, as uploaded."""
    return (FACES / name).read_bytes()


def distinct_copy(data: bytes, n: int) -> bytes:
    """``data`` (a JPEG or a PNG) with a comment naming ``n``: the same pixels, other bytes,
    so the service takes it as another photo (it recognizes the same bytes sent again)."""
    comment = f"event-photos copy {n}".encode()
    if data.startswith(b"\xff\xd8"):  # JPEG: a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):  # PNG: a tEXt chunk right after IHDR
        chunk = b"tEXt" + b"Comment\x00" + comment
        at = 8 + 25
        return (
            data[:at]
            + struct.pack(">I", len(chunk) - 4)
            + chunk
            + struct.pack(">I", zlib.crc32(chunk))
            + data[at:]
        )
    raise ValueError("a JPEG or a PNG")


def fixture_image(name: str) -> Image.Image:
    """A photo of ``tests/fixtures/faces``, upright (EXIF orientation applied), in RGB."""
    return ImageOps.exif_transpose(Image.open(FACES / name)).convert("RGB")


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def side_by_side(*names: str, height: int = 600) -> bytes:
    """A composite photo: the fixtures next to each other, scaled to one height (JPEG)."""
    images = []
    for name in names:
        im = fixture_image(name)
        images.append(im.resize((round(im.width * height / im.height), height)))
    canvas = Image.new("RGB", (sum(i.width for i in images) + 40 * len(images), height + 40), "white")
    x = 20
    for im in images:
        canvas.paste(im, (x, 20))
        x += im.width + 40
    return jpeg(canvas)


def gallery_photos() -> dict[str, bytes]:
    """Nine photos: A alone in four, B and C alone, the six-person group, A next to B, C next
    to the group."""
    return {
        "a2.jpg": fixture_bytes("obama2.jpg"),
        "a3.jpg": fixture_bytes("obama3.jpg"),
        "a_rgba.png": fixture_bytes("32bit.png"),
        "a_partial.jpg": fixture_bytes("obama_partial_face.jpg"),
        "b.jpg": fixture_bytes("biden.jpg"),
        "c.png": fixture_bytes("Tom_Hanks_54745.png"),
        "group.jpg": fixture_bytes("t1.jpg"),
        "a_and_b.jpg": side_by_side("obama3.jpg", "biden.jpg"),
        "c_and_group.jpg": side_by_side("Tom_Hanks_54745.png", "t1.jpg", height=900),
    }


def twenty_photos() -> dict[str, bytes]:
    """The devset's 18 photos and two more of Obama: 20, of which 9 show him."""
    photos = {p.name: p.read_bytes() for p in sorted(DEVSET.iterdir()) if p.suffix in (".jpg", ".png")}
    photos |= {n: fixture_bytes(n) for n in ("obama2.jpg", "obama3.jpg")}
    if len(photos) != 20:
        raise RuntimeError(f"the devset changed: {len(photos)} photos instead of 20")
    return photos


def obama_photos() -> set[str]:
    """The names of :func:`twenty_photos` that show Obama (from the devset's ``truth.json``)."""
    truth = json.loads((DEVSET / "truth.json").read_text())["photos"]
    return {name for name, people in truth.items() if "obama" in people} | {"obama2.jpg", "obama3.jpg"}
