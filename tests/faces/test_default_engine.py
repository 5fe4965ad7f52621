"""The default engine (YuNet finds faces, SFace describes them) on real photos: selfie rules
with the landmark checks, small faces of large photos, identity."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.core.config import get_settings
from app.faces.detectors import Detection
from app.faces.engine import LocalEngine, build_engine, pose
from app.faces.providers import match_settings
from app.faces.providers.base import SelfieRejected
from app.faces.recognizers import SFACE_MODEL
from tools.match_scoring import vector

pytestmark = pytest.mark.once

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "faces"
DEVSET = REPO / "tests" / "fixtures" / "devset"
SINGLES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "biden.jpg", "32bit.png"]


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    settings = get_settings()
    engine = build_engine(detector=settings.face_detector, recognizer=settings.face_recognizer)
    engine.load_models()
    return engine


def jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def refusal(engine: LocalEngine, data: bytes) -> str:
    with pytest.raises(SelfieRejected) as caught:
        engine.analyze_selfie(data, strict=True)
    return caught.value.code


def test_the_default_engine_is_yunet_with_sface(engine: LocalEngine) -> None:
    assert (engine.detector.name, engine.recognizer.name, engine.model) == ("yunet", "sface", SFACE_MODEL)


def test_every_real_single_person_photo_is_accepted_with_its_landmark_measures(engine: LocalEngine) -> None:
    for path in [*(FIXTURES / n for n in SINGLES), *sorted(DEVSET.glob("[!g]*.[jp][pn]g"))]:
        if path.name in ("obama_240p.jpg",):  # a 54 px face: too small for a selfie
            continue
        analysis = engine.analyze_selfie(path.read_bytes(), strict=True)
        assert analysis.faces_found == 1, path.name
        descriptor = vector(analysis.face)
        assert descriptor.shape == (128,) and not descriptor.flags.writeable
        assert abs(float(np.linalg.norm(descriptor)) - 1.0) < 1e-4
        assert {"yaw", "score", "eyes_luma", "lower_luma", "lower_chroma"} <= set(analysis.quality), path.name


def test_refusals_say_why(engine: LocalEngine) -> None:
    assert refusal(engine, (FIXTURES / "mask_white.jpg").read_bytes()) == "no_face"
    assert refusal(engine, (FIXTURES / "t1.jpg").read_bytes()) == "multiple_faces"
    assert refusal(engine, (FIXTURES / "Tom_Hanks_54745.png").read_bytes()) == "face_too_small"


def test_a_painting_behind_the_guest_does_not_count_as_a_second_face(engine: LocalEngine) -> None:
    assert engine.analyze_selfie((DEVSET / "biden_2.jpg").read_bytes(), strict=True).faces_found == 1


@pytest.mark.parametrize("cover", ["sunglasses", "blue mask", "white mask"])
def test_a_face_behind_sunglasses_or_a_mask_is_refused_as_hidden(engine: LocalEngine, cover: str) -> None:
    img = Image.open(FIXTURES / "obama.jpg").convert("RGB")
    (face,) = engine.detector.detect_quick(img)
    assert face.landmarks is not None
    width = face.box.width
    draw = ImageDraw.Draw(img)
    if cover == "sunglasses":
        r = width * 0.13
        for x, y in face.landmarks[:2]:
            draw.ellipse((x - r, y - r * 0.75, x + r, y + r * 0.75), fill=(15, 15, 20))
    else:
        top = face.landmarks[2][1] - width * 0.03
        colour = (110, 160, 215) if cover == "blue mask" else (235, 235, 235)
        box = face.box
        draw.polygon(
            [
                (box.left + width * 0.05, top),
                (box.right - width * 0.05, top),
                (box.right - width * 0.12, box.bottom),
                (box.left + width * 0.12, box.bottom),
            ],
            fill=colour,
        )
    assert refusal(engine, jpeg(img)) == "face_hidden"


def test_a_face_turned_away_is_refused_and_one_facing_the_camera_is_not(engine: LocalEngine) -> None:
    img = Image.open(FIXTURES / "obama.jpg").convert("RGB")
    (face,) = engine.detector.detect_quick(img)
    assert face.landmarks is not None and abs(pose(face)["yaw"]) < 0.1
    turned = face.landmarks.copy()
    turned[2] = turned[1]  # the nose in line with the far eye: a head turned by about 45 degrees
    assert abs(pose(Detection(face.box, face.rect, turned, face.score))["yaw"]) > 0.45
    with pytest.raises(SelfieRejected) as caught:
        engine._check(
            {
                "face_px": 200,
                "sharpness": 100,
                "brightness": 120,
                **pose(Detection(face.box, face.rect, turned, face.score)),
            }
        )
    assert caught.value.code == "face_turned"


def _photo_with_a_small_face(face_px: int, size: tuple[int, int]) -> bytes:
    source = Image.open(FIXTURES / "obama2.jpg").convert("RGB")
    scale = face_px / 276  # obama2.jpg's face is 276 px wide
    small = source.resize(
        (round(source.width * scale), round(source.height * scale)), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", size, (120, 130, 140))
    canvas.paste(small, (size[0] // 2, size[1] // 2))
    return jpeg(canvas)


@pytest.mark.parametrize(("face_px", "size"), [(36, (4000, 3000)), (60, (4000, 3000)), (40, (8660, 5773))])
def test_small_faces_of_12_and_50_mp_photos_are_found_and_match_their_person(
    engine: LocalEngine, face_px: int, size: tuple[int, int]
) -> None:
    selfie = engine.analyze_selfie((FIXTURES / "obama.jpg").read_bytes(), strict=True).face
    (found,) = engine.index_photo(_photo_with_a_small_face(face_px, size))
    assert 0.6 * face_px <= found.box.width <= 1.6 * face_px
    guard = match_settings(get_settings()).guard
    assert float(np.linalg.norm(vector(found) - vector(selfie))) < guard


def test_same_people_are_closer_than_the_threshold_and_strangers_beyond_the_guard(
    engine: LocalEngine,
) -> None:
    distances = match_settings(get_settings())
    a = [vector(engine.index_photo((FIXTURES / n).read_bytes())[0]) for n in ("obama.jpg", "obama3.jpg")]
    b = vector(engine.index_photo((FIXTURES / "biden.jpg").read_bytes())[0])
    strangers = [vector(f) for f in engine.index_photo((FIXTURES / "t1.jpg").read_bytes())]
    assert float(np.linalg.norm(a[0] - a[1])) < distances.threshold
    for other in [b, *strangers]:
        assert float(np.linalg.norm(a[0] - other)) > distances.guard
