"""Behaviour of the dlib engine (``FACE_DETECTOR=hog FACE_RECOGNIZER=dlib``, the fallback) on
real photos: selfie rules, detection, identity. The default engine is in test_default_engine."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageEnhance, ImageFilter

from app.core.errors import PayloadTooLarge, Unprocessable, UnsupportedMediaType
from app.faces.engine import LocalDlibEngine
from app.faces.images import register_heif
from app.faces.matching import Gallery
from app.faces.providers.base import DetectedFace, FaceBox, FaceProvider, SelfieAnalysis, SelfieRejected
from app.faces.providers.local import LocalProvider
from tools.match_scoring import vector

pytestmark = pytest.mark.once

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "faces"
PERSON_A = [
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
]
PERSON_B = ["biden.jpg"]
PERSON_C = ["Tom_Hanks_54745.png"]
# Where the composite fixture pastes obama.jpg at full size.
OBAMA_AT = (2600, 1200)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_image(name: str) -> Image.Image:
    with Image.open(FIXTURES / name) as img:
        return img.convert("RGB")


def jpeg(img: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=92, **options)
    return buffer.getvalue()


def distance(a: DetectedFace, b: DetectedFace) -> float:
    return float(np.linalg.norm(vector(a) - vector(b)))


def rejection(engine: LocalDlibEngine, data: bytes) -> SelfieRejected:
    with pytest.raises(SelfieRejected) as caught:
        engine.analyze_selfie(data, strict=True)
    return caught.value


@pytest.fixture(scope="module")
def engine() -> LocalDlibEngine:
    engine = LocalDlibEngine()
    engine.load_models()
    return engine


@pytest.fixture(scope="module")
def selfies(engine: LocalDlibEngine) -> dict[str, SelfieAnalysis]:
    """Every real single-person fixture analysed once as a strict selfie."""
    return {
        name: engine.analyze_selfie(fixture_bytes(name), strict=True)
        for name in PERSON_A + PERSON_B + PERSON_C
    }


@pytest.fixture(scope="module")
def group_composite() -> bytes:
    """A 4000x3000 photo: the six-person t1.jpg at top left and obama.jpg further right."""
    canvas = Image.new("RGB", (4000, 3000), (120, 130, 140))
    canvas.paste(fixture_image("t1.jpg"), (100, 100))
    canvas.paste(fixture_image("obama.jpg"), OBAMA_AT)
    return jpeg(canvas)


# --- the engine as a component ------------------------------------------------------------


def test_importing_the_engine_does_not_import_dlib() -> None:
    code = "import sys, app.faces.engine, app.faces.matching; sys.exit('dlib' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_the_local_provider_implements_the_provider_contract() -> None:
    provider = LocalProvider(engine=LocalDlibEngine(max_pixels=40_000_000), threshold=0.5)
    assert isinstance(provider, FaceProvider)
    assert provider.model == "dlib-resnet-v1"


# --- accepted selfies and identity --------------------------------------------------------


def test_every_real_single_person_photo_is_accepted_as_a_strict_selfie(
    selfies: dict[str, SelfieAnalysis],
) -> None:
    for name, analysis in selfies.items():
        assert analysis.faces_found == 1, name
        descriptor = vector(analysis.face)
        assert descriptor.dtype == np.float32 and descriptor.shape == (128,), name
        assert not descriptor.flags.writeable, name
        assert set(analysis.quality) == {"face_px", "sharpness", "brightness"}


def test_small_but_clear_112_px_crop_is_accepted_as_a_selfie(
    engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis]
) -> None:
    tom = selfies["Tom_Hanks_54745.png"]
    assert engine.min_face_px <= tom.quality["face_px"] < 112
    assert tom.face.box.right <= 112 and tom.face.box.bottom <= 112


def test_face_box_is_in_original_pixels(selfies: dict[str, SelfieAnalysis]) -> None:
    box = selfies["obama.jpg"].face.box
    # obama.jpg is 910x1137 with the face in the upper middle.
    assert 300 < box.left < box.right < 700 and 100 < box.top < box.bottom < 450
    assert box.width == box.right - box.left and box.height == box.bottom - box.top


def test_person_a_photos_are_closer_to_each_other_than_to_b_or_c(
    selfies: dict[str, SelfieAnalysis],
) -> None:
    faces = {name: analysis.face for name, analysis in selfies.items()}
    same = [distance(faces[a], faces[b]) for a, b in itertools.combinations(PERSON_A, 2)]
    different = [
        distance(faces[a], faces[b])
        for a, b in itertools.combinations(faces, 2)
        if not (a in PERSON_A and b in PERSON_A)
    ]
    assert max(same) < min(different)
    assert max(same) < 0.5
    assert min(different) > 0.6


def test_obama_selfie_finds_only_person_a_photos_in_a_gallery(
    selfies: dict[str, SelfieAnalysis],
) -> None:
    names = list(selfies)
    gallery = Gallery()
    gallery.append(
        np.arange(len(names)),
        np.arange(len(names)) + 100,
        np.stack([vector(selfies[name].face) for name in names]),
    )
    probe = vector(selfies["obama.jpg"].face)
    matched = {names[face_id] for face_id, _, _ in gallery.match(probe, threshold=0.5)}
    assert matched == set(PERSON_A)


def test_exif_rotated_selfie_is_detected_upright(
    engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis]
) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored = fixture_image("obama.jpg").transpose(Image.Transpose.ROTATE_90)
    analysis = engine.analyze_selfie(jpeg(stored, exif=exif), strict=True)

    upright = selfies["obama.jpg"].face
    assert abs(analysis.face.box.left - upright.box.left) <= 6
    assert abs(analysis.face.box.top - upright.box.top) <= 6
    assert distance(analysis.face, upright) < 0.1


def test_heic_selfie_is_accepted(engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis]) -> None:
    register_heif()
    buffer = io.BytesIO()
    fixture_image("obama.jpg").save(buffer, format="HEIF", quality=80)
    analysis = engine.analyze_selfie(buffer.getvalue(), strict=True)
    assert distance(analysis.face, selfies["obama.jpg"].face) < 0.15


# --- refused selfies ----------------------------------------------------------------------


def test_group_photo_is_refused_as_a_selfie_with_multiple_faces(engine: LocalDlibEngine) -> None:
    refused = rejection(engine, fixture_bytes("t1.jpg"))
    assert isinstance(refused, Unprocessable) and refused.status_code == 422
    assert refused.code == "multiple_faces"
    assert "6 faces" in refused.message
    assert refused.to_body()["error"]["faces_found"] == 6


@pytest.mark.parametrize("name", ["mask_white.jpg", "mask_blue.jpg"])
def test_a_mask_is_refused_with_no_face(engine: LocalDlibEngine, name: str) -> None:
    refused = rejection(engine, fixture_bytes(name))
    assert refused.code == "no_face"
    assert "could not find a face" in refused.message


def test_blurred_selfie_is_refused_as_too_blurry(engine: LocalDlibEngine) -> None:
    blurred = fixture_image("obama.jpg").filter(ImageFilter.GaussianBlur(6))
    refused = rejection(engine, jpeg(blurred))
    assert refused.code == "too_blurry"
    assert "blurry" in refused.message


def test_dark_selfie_is_refused_as_too_dark(engine: LocalDlibEngine) -> None:
    dark = ImageEnhance.Brightness(fixture_image("obama.jpg")).enhance(0.15)
    refused = rejection(engine, jpeg(dark))
    assert refused.code == "too_dark"
    assert "brighter" in refused.message


def test_small_face_is_refused_as_too_small(engine: LocalDlibEngine) -> None:
    obama = fixture_image("obama.jpg")
    # The face box is ~268 px wide; at 22 % it is ~60 px, still detectable but too small.
    small = obama.resize((round(obama.width * 0.22), round(obama.height * 0.22)))
    refused = rejection(engine, jpeg(small))
    assert refused.code == "face_too_small"
    assert "closer" in refused.message


def test_relaxed_mode_skips_the_quality_checks_but_reports_them(
    engine: LocalDlibEngine,
) -> None:
    blurred = fixture_image("obama.jpg").filter(ImageFilter.GaussianBlur(6))
    analysis = engine.analyze_selfie(jpeg(blurred), strict=False)
    assert analysis.faces_found == 1
    assert analysis.quality["sharpness"] < engine.min_sharpness


def test_relaxed_mode_takes_the_largest_face_of_a_group_photo(
    engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis], group_composite: bytes
) -> None:
    analysis = engine.analyze_selfie(group_composite, strict=False)
    assert analysis.faces_found == 7
    assert analysis.face.box.left > OBAMA_AT[0] and analysis.face.box.top > OBAMA_AT[1]
    assert distance(analysis.face, selfies["obama.jpg"].face) < 0.15


def test_non_image_selfie_is_refused_with_unsupported_format(engine: LocalDlibEngine) -> None:
    with pytest.raises(UnsupportedMediaType):
        engine.analyze_selfie(b"definitely not a photo", strict=True)


def test_selfie_over_the_pixel_limit_is_refused_as_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        LocalDlibEngine(max_pixels=500_000).analyze_selfie(fixture_bytes("obama.jpg"), strict=True)


# --- indexing event photos ----------------------------------------------------------------


def test_index_photo_finds_the_six_faces_of_the_group_photo_left_to_right(
    engine: LocalDlibEngine,
) -> None:
    faces = engine.index_photo(fixture_bytes("t1.jpg"))
    assert len(faces) == 6
    lefts = [face.box.left for face in faces]
    assert lefts == sorted(lefts)
    assert all(isinstance(face.box, FaceBox) for face in faces)
    assert all(vector(face).shape == (128,) for face in faces)
    # Six different people: no two of them look like the same person.
    pairs = itertools.combinations(faces, 2)
    assert min(distance(a, b) for a, b in pairs) > 0.5


def test_index_photo_of_a_large_group_photo_maps_boxes_to_original_pixels(
    engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis], group_composite: bytes
) -> None:
    faces = engine.index_photo(group_composite)
    assert len(faces) == 7
    obama_box = selfies["obama.jpg"].face.box
    best = min(faces, key=lambda face: distance(face, selfies["obama.jpg"].face))
    # The selfie's box comes from its quick pass on an 800 px copy: allow 6 % of the box.
    tolerance = max(12, 0.06 * obama_box.width)
    assert abs(best.box.left - (OBAMA_AT[0] + obama_box.left)) <= tolerance
    assert abs(best.box.top - (OBAMA_AT[1] + obama_box.top)) <= tolerance
    assert distance(best, selfies["obama.jpg"].face) < 0.15


def test_index_photo_without_people_finds_no_faces(engine: LocalDlibEngine) -> None:
    assert engine.index_photo(fixture_bytes("mask_white.jpg")) == []


def _dlib_own_descriptor(data: bytes) -> np.ndarray:
    """The descriptor of the photo's one face as dlib computes it, without our exposure step."""
    import dlib

    from app.faces.images import load_rgb
    from app.faces.recognizers import _dlib_models as _load_models

    models = _load_models()
    img = load_rgb(data, max_pixels=50_000_000)
    (found,) = LocalDlibEngine().detector.detect(img, min_face_px=36)
    left, top, right, bottom = found.rect
    pixels = np.asarray(img)
    shape = models.shape_predictor(pixels, dlib.rectangle(left, top, right - 1, bottom - 1))
    return np.asarray(models.encoder.compute_face_descriptor(pixels, shape), dtype=np.float32)


def test_a_normally_lit_face_keeps_exactly_dlibs_own_descriptor(engine: LocalDlibEngine) -> None:
    (face,) = engine.index_photo(fixture_bytes("obama2.jpg"))
    assert np.array_equal(vector(face), _dlib_own_descriptor(fixture_bytes("obama2.jpg")))


def test_a_dim_face_is_described_closer_to_the_same_face_lit(engine: LocalDlibEngine) -> None:
    lit = vector(engine.index_photo(fixture_bytes("obama2.jpg"))[0])
    out = io.BytesIO()
    ImageEnhance.Brightness(Image.open(FIXTURES / "obama2.jpg")).enhance(0.35).save(out, "JPEG", quality=90)
    (dim,) = engine.index_photo(out.getvalue())
    plain = _dlib_own_descriptor(out.getvalue())
    assert np.linalg.norm(vector(dim) - lit) < np.linalg.norm(plain - lit)


def _photo_with_a_small_face(face_px: int) -> bytes:
    """A 4000x3000 (12 MP) photo with obama2.jpg's face scaled to ``face_px`` wide."""
    source = fixture_image("obama2.jpg")
    (face,) = LocalDlibEngine().index_photo(fixture_bytes("obama2.jpg"))
    scale = face_px / face.box.width
    small = source.resize(
        (round(source.width * scale), round(source.height * scale)), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (4000, 3000), (120, 130, 140))
    canvas.paste(small, (2000, 1500))
    return jpeg(canvas)


def test_the_60_px_face_of_a_12_mp_photo_is_found_by_default_and_matches_its_person(
    engine: LocalDlibEngine, selfies: dict[str, SelfieAnalysis]
) -> None:
    (found,) = engine.index_photo(_photo_with_a_small_face(60))
    assert 50 <= found.box.width <= 75
    assert distance(found, selfies["obama.jpg"].face) < 0.6  # within the guard: expansion can reach it


def test_the_40_px_face_of_a_12_mp_photo_needs_one_doubling() -> None:
    photo = _photo_with_a_small_face(40)
    assert LocalDlibEngine().index_photo(photo) == []
    (found,) = LocalDlibEngine(upsample=1).index_photo(photo)
    assert 30 <= found.box.width <= 55
