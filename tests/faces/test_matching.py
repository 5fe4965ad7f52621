"""Behaviour of descriptor storage and euclidean matching (pure numpy, no dlib)."""

from __future__ import annotations

import numpy as np
import pytest

from app.faces.matching import Gallery, from_blob, from_blobs, match_many, to_blob
from app.faces.providers.base import GuestSelfies

pytestmark = pytest.mark.once


def random_descriptors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.normal(size=(count, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors * rng.uniform(0.8, 1.2, size=(count, 1)).astype(np.float32)


def near(rng: np.random.Generator, vector: np.ndarray, spread: float) -> np.ndarray:
    return (vector + rng.normal(scale=spread, size=vector.shape)).astype(np.float32)


def brute_force_best_per_photo(
    gallery: Gallery, probe: np.ndarray, threshold: float
) -> list[tuple[int, int, float]]:
    distances = np.linalg.norm(gallery.vectors.astype(np.float64) - probe, axis=1)
    best: dict[int, tuple[float, int]] = {}
    for face_id, photo_id, dist in zip(gallery.ids, gallery.photo_ids, distances, strict=True):
        if dist <= threshold and (int(photo_id) not in best or dist < best[int(photo_id)][0]):
            best[int(photo_id)] = (float(dist), int(face_id))
    return sorted(
        ((face_id, photo_id, dist) for photo_id, (dist, face_id) in best.items()),
        key=lambda item: item[2],
    )


# --- storage format -----------------------------------------------------------------------


def test_blob_round_trip_is_exact_and_little_endian_float32() -> None:
    vector = np.random.default_rng(1).normal(size=128).astype(np.float32)
    blob = to_blob(vector)
    assert len(blob) == 512
    assert blob == vector.astype("<f4").tobytes()
    restored = from_blob(blob)
    assert restored.dtype == np.float32 and restored.shape == (128,)
    assert np.array_equal(restored, vector)
    restored[0] = 1.0  # a writable copy, not a view of the blob


def test_blob_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="512 bytes"):
        from_blob(b"\x00" * 508)


def test_descriptor_of_the_wrong_shape_or_with_nan_cannot_be_stored() -> None:
    with pytest.raises(ValueError):
        to_blob(np.zeros(127, dtype=np.float32))
    with pytest.raises(ValueError):
        to_blob(np.zeros((1, 128), dtype=np.float32))
    with pytest.raises(ValueError):
        to_blob(np.full(128, np.nan, dtype=np.float32))


def test_float64_descriptors_are_stored_as_float32() -> None:
    vector = np.linspace(-1, 1, 128)
    assert np.allclose(from_blob(to_blob(vector)), vector, atol=1e-7)


# --- one probe against an event gallery ---------------------------------------------------


def test_gallery_match_equals_brute_force_numpy_norm() -> None:
    rng = np.random.default_rng(2)
    vectors = random_descriptors(rng, 3000)
    gallery = Gallery(capacity=16)
    for start in range(0, 3000, 700):  # several appends, forcing growth
        stop = min(start + 700, 3000)
        ids = np.arange(start, stop) + 10_000
        gallery.append(ids, ids // 5, vectors[start:stop])
    assert len(gallery) == 3000
    assert np.array_equal(gallery.vectors, vectors)

    for probe in (near(rng, vectors[17], 0.02), near(rng, vectors[2500], 0.04), vectors[9]):
        for threshold in (0.3, 0.6, 1.2):
            expected = brute_force_best_per_photo(gallery, probe, threshold)
            got = gallery.match(probe, threshold=threshold)
            assert [(f, p) for f, p, _ in got] == [(f, p) for f, p, _ in expected]
            assert np.allclose([d for *_, d in got], [d for *_, d in expected], atol=1e-6)


def test_only_the_best_face_per_photo_is_returned_sorted_by_distance() -> None:
    probe = np.zeros(128, dtype=np.float32)
    vectors = np.zeros((5, 128), dtype=np.float32)
    vectors[:, 0] = [0.30, 0.10, 0.45, 0.20, 0.90]
    gallery = Gallery()
    gallery.append(
        np.array([1, 2, 3, 4, 5]),  # face ids
        np.array([7, 7, 8, 9, 9]),  # photo ids
        vectors,
    )
    result = gallery.match(probe, threshold=0.5)
    assert [(f, p) for f, p, _ in result] == [(2, 7), (4, 9), (3, 8)]
    assert [round(d, 6) for *_, d in result] == [0.1, 0.2, 0.45]


def test_threshold_is_inclusive_and_exact_at_the_boundary() -> None:
    probe = np.zeros(128, dtype=np.float32)
    vectors = np.zeros((1, 128), dtype=np.float32)
    vectors[0, 5] = 0.5
    gallery = Gallery()
    gallery.append(np.array([1]), np.array([1]), vectors)
    assert gallery.match(probe, threshold=0.5) == [(1, 1, 0.5)]
    assert gallery.match(probe, threshold=0.4999999) == []


def test_an_identical_descriptor_matches_at_distance_zero_not_nan() -> None:
    rng = np.random.default_rng(3)
    vectors = random_descriptors(rng, 100)
    gallery = Gallery()
    gallery.append(np.arange(100), np.arange(100), vectors)
    face_id, photo_id, dist = gallery.match(vectors[42], threshold=0.1)[0]
    assert (face_id, photo_id, dist) == (42, 42, 0.0)


def test_an_empty_gallery_matches_nothing() -> None:
    assert Gallery().match(np.zeros(128, dtype=np.float32), threshold=0.6) == []


def test_mismatched_inputs_are_refused() -> None:
    gallery = Gallery()
    with pytest.raises(ValueError):
        gallery.append(np.arange(2), np.arange(3), np.zeros((2, 128)))
    with pytest.raises(ValueError):
        gallery.append(np.arange(2), np.arange(2), np.zeros((2, 64)))
    with pytest.raises(ValueError):
        gallery.match(np.zeros(64, dtype=np.float32), threshold=0.6)


# --- a few photo faces against many selfies -----------------------------------------------


def test_match_many_equals_brute_force_numpy_norm() -> None:
    rng = np.random.default_rng(4)
    selfies = random_descriptors(rng, 2000)
    probes = np.stack([near(rng, selfies[i], 0.03) for i in (5, 5, 1999, 700)])
    probes = np.vstack([probes, random_descriptors(rng, 2)])
    threshold = 0.6

    result = match_many(probes, selfies, threshold, block_rows=512)

    distances = np.linalg.norm(probes[:, None, :].astype(np.float64) - selfies[None, :, :], axis=2)
    expected = sorted(
        (
            (int(p), int(g), float(distances[p, g]))
            for p, g in zip(*np.nonzero(distances <= threshold), strict=True)
        ),
        key=lambda item: (item[0], item[2], item[1]),
    )
    assert [(p, g) for p, g, _ in result] == [(p, g) for p, g, _ in expected]
    assert np.allclose([d for *_, d in result], [d for *_, d in expected], atol=1e-6)
    assert {(p, g) for p, g, _ in result} >= {(0, 5), (1, 5), (2, 1999), (3, 700)}


def test_match_many_with_no_probes_or_no_selfies_matches_nothing() -> None:
    empty = np.zeros((0, 128), dtype=np.float32)
    some = random_descriptors(np.random.default_rng(5), 3)
    assert match_many(empty, some, 0.6) == []
    assert match_many(some, empty, 0.6) == []


# --- gallery-aware matching (average query expansion) --------------------------------------


def _axis(index: int, length: float) -> np.ndarray:
    vector = np.zeros(128, dtype=np.float32)
    vector[index] = length
    return vector


def _gallery(faces: dict[int, np.ndarray]) -> Gallery:
    """One face per photo: face id == photo id."""
    gallery = Gallery()
    ids = np.array(list(faces))
    gallery.append(ids, ids, np.stack(list(faces.values())))
    return gallery


SELFIE = np.zeros(128, dtype=np.float32)
EASY = _axis(0, 0.45)  # matches directly
HARD = _axis(0, 0.55)  # beyond the threshold, close to the average of the selfie and EASY
TOO_FAR = _axis(0, 0.65)  # close to that average too, but beyond the guard
STRANGER = _axis(1, 0.55)  # as far from the selfie as HARD, on another side


def _photos(gallery: Gallery, **options: object) -> set[int]:
    return {photo for _face, photo, _d in gallery.match(SELFIE, threshold=0.5, **options)}  # type: ignore[arg-type]


def test_a_hard_photo_joins_through_the_average_of_the_selfie_and_its_easy_photos() -> None:
    gallery = _gallery({1: EASY, 2: HARD, 3: TOO_FAR, 4: STRANGER})
    assert _photos(gallery) == {1}
    found = gallery.match(SELFIE, threshold=0.5, expand=0.5, guard=0.6)
    assert [(photo, round(d, 2)) for _f, photo, d in found] == [
        (1, 0.45),
        (2, 0.55),
    ]  # distances to the selfie


def test_nothing_joins_beyond_the_guard_or_away_from_the_guests_photos() -> None:
    gallery = _gallery({1: EASY, 3: TOO_FAR, 4: STRANGER})
    assert _photos(gallery, expand=0.5, guard=0.6) == {1}
    assert _photos(gallery, expand=0.5, guard=0.7) == {1, 3}  # the guard is what keeps TOO_FAR out


def test_without_a_direct_match_nothing_is_expanded() -> None:
    assert _photos(_gallery({2: HARD, 3: TOO_FAR}), expand=0.5, guard=0.6) == set()


def test_a_photo_said_not_me_neither_matches_nor_pulls_others_in() -> None:
    gallery = _gallery({1: EASY, 2: HARD})
    assert _photos(gallery, expand=0.5, guard=0.6) == {1, 2}
    assert _photos(gallery, expand=0.5, guard=0.6, exclude_photos={1}) == set()
    assert _photos(gallery, expand=0.5, guard=0.6, exclude_photos={2}) == {1}


def test_expansion_is_off_with_expand_zero_and_keeps_one_face_per_photo() -> None:
    gallery = Gallery()
    gallery.append(np.array([1, 2, 3]), np.array([7, 7, 8]), np.stack([EASY, _axis(0, 0.3), HARD]))
    ((face, photo, distance),) = gallery.match(SELFIE, threshold=0.5, expand=0.0, guard=0.6)
    assert (face, photo) == (2, 7) and distance == pytest.approx(0.3)
    assert [(f, p) for f, p, _d in gallery.match(SELFIE, threshold=0.5, expand=0.5, guard=0.6)] == [
        (2, 7),
        (3, 8),
    ]


def test_guest_selfies_keep_each_signature_and_give_their_descriptors_as_one_matrix() -> None:
    vectors = np.random.default_rng(3).normal(size=(3, 128)).astype(np.float32)
    selfies = GuestSelfies.of((10 + i, 20 + i, to_blob(v)) for i, v in enumerate(vectors))
    assert len(selfies) == 3
    assert selfies.selfie_ids.tolist() == [10, 11, 12] and selfies.user_ids.tolist() == [20, 21, 22]
    assert selfies.signature(1) == to_blob(vectors[1])
    np.testing.assert_array_equal(from_blobs(selfies.joined(512), count=3), vectors)
    assert len(GuestSelfies.of([])) == 0 and from_blobs(GuestSelfies.of([]).joined(512), count=0).shape == (
        0,
        128,
    )


def test_a_guest_signature_of_another_width_is_not_read_as_a_descriptor() -> None:
    selfies = GuestSelfies.of([(1, 1, to_blob(np.zeros(128))), (2, 2, b"an-azure-persisted-face-id")])
    assert selfies.signature(1) == b"an-azure-persisted-face-id"
    with pytest.raises(ValueError, match="not 512 bytes"):
        selfies.joined(512)
    with pytest.raises(ValueError, match="must be 1024 bytes"):
        from_blobs(b"\0" * 1000, count=2)


def test_a_gallery_reserved_for_its_faces_takes_them_in_blocks_without_growing() -> None:
    vectors = np.random.default_rng(4).normal(size=(300, 128)).astype(np.float32)
    gallery = Gallery(capacity=1)
    gallery.reserve(300)
    buffer = gallery._vectors  # the buffer itself is what is asserted
    for start in range(0, 300, 64):
        rows = np.arange(start, min(start + 64, 300))
        gallery.append(rows, rows, vectors[rows])
    assert gallery._vectors is buffer
    np.testing.assert_array_equal(gallery.vectors, vectors)
