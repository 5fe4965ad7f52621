"""An event's approximate nearest-neighbour segments (``app.faces.ann``) on their own: written
once as the next link of a chain, stored as int8, and a lookup that returns every face within
the radius (a superset the caller re-ranks exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from usearch.compiled import ScalarKind
from usearch.index import Index

from app.faces import ann
from app.faces.matching import Gallery
from tools.match_scoring import Indexed

pytestmark = pytest.mark.once


def test_a_segment_is_written_only_as_the_next_link_of_the_chain(tmp_path: Path) -> None:
    vectors = np.random.default_rng(8).normal(size=(10, 128)).astype(np.float32)
    name = ann.stem(event_id=1, token="t", model="m")
    assert ann.write_segment(tmp_path, name, first=0, last=10, blocks=[(np.arange(10), vectors)])
    assert ann.write_segment(tmp_path, name, first=0, last=10, blocks=[(np.arange(10), vectors)]) is None
    assert ann.write_segment(tmp_path, name, first=11, last=20, blocks=[(np.arange(10), vectors)]) is None
    assert ann.write_segment(tmp_path, name, first=10, last=20, blocks=[(np.arange(10, 20), vectors)])


def test_an_ann_lookup_widens_until_it_has_every_face_within_the_radius(tmp_path: Path) -> None:
    """300 faces close to the probe (more than the first search asks for) and 700 far."""
    rng = np.random.default_rng(9)
    probe = rng.normal(size=128).astype(np.float32)
    probe /= np.linalg.norm(probe)
    close = probe + rng.normal(scale=0.03, size=(300, 128)).astype(np.float32)
    far = rng.normal(size=(700, 128)).astype(np.float32)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    vectors = np.vstack([close, far])
    name = ann.stem(event_id=1, token="t", model="m")
    segment = ann.write_segment(tmp_path, name, first=0, last=1000, blocks=[(np.arange(1000), vectors)])
    assert segment is not None
    found = set(ann.near(ann.view(segment), probe, 1.0).tolist())
    exact = Gallery()
    exact.append(np.arange(1000), np.arange(1000), vectors)
    assert {face for face, _p, _d in exact.match(probe, threshold=1.0)} <= found


def _within(vectors: np.ndarray, probe: np.ndarray, radius: float) -> set[int]:
    return set(np.nonzero(np.linalg.norm(vectors - probe, axis=1) <= radius)[0].tolist())


def test_int8_segments_find_every_face_within_the_radius_of_unit_and_dlib_scale_descriptors(
    tmp_path: Path, devset: tuple[Indexed, dict[str, np.ndarray]]
) -> None:
    """The devset's descriptors (unit length), and descriptors on dlib's scale (length about
    1.4, components within 0.5): a segment stores them as int8, and a lookup still returns
    every face within the radius, and nothing much beyond it."""
    indexed, probes = devset
    rng = np.random.default_rng(10)
    dlib_like = rng.normal(scale=0.125, size=(400, 128)).astype(np.float32)
    for vectors, queries, radii in (
        (indexed.gallery.vectors, np.stack(list(probes.values())), (0.9, 1.0, 1.16)),
        (dlib_like, dlib_like[:20] + rng.normal(scale=0.02, size=(20, 128)).astype(np.float32), (0.5, 0.6)),
    ):
        name = ann.stem(event_id=len(vectors), token="t", model="m")
        segment = ann.write_segment(
            tmp_path, name, first=0, last=len(vectors), blocks=[(np.arange(len(vectors)), vectors)]
        )
        assert segment is not None and ann.view(segment).dtype == ScalarKind.I8
        for probe in queries:
            for radius in radii:
                found = set(ann.near(ann.view(segment), probe, radius).tolist())
                assert _within(vectors, probe, radius) <= found
                assert found <= _within(vectors, probe, radius + 2 * ann.MARGIN)


def test_a_segment_lists_its_face_ids_and_a_search_returns_them_without_a_key_table(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(12)
    vectors = rng.normal(size=(300, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(5_000_000_000, 5_000_000_300)  # beyond 32 bits
    segment = ann.write_segment(
        tmp_path, ann.stem(event_id=1, token="t", model="m"), first=0, last=300, blocks=[(ids, vectors)]
    )
    assert segment is not None
    assert sorted(ann.keys(segment).tolist()) == ids.tolist()
    for row in (0, 150, 299):
        assert ids[row] in ann.near(ann.view(segment), vectors[row], 0.1)


def test_a_float16_segment_of_16_links_of_an_earlier_version_is_still_searched(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(500, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    old = Index(ndim=128, metric="l2sq", dtype="f16", connectivity=16)
    old.add(np.arange(500, dtype=np.uint64), vectors)
    old.save(str(tmp_path / (ann.stem(event_id=1, token="t", model="m") + "-0-500.usearch")))
    (segment,) = ann.segments(tmp_path, ann.stem(event_id=1, token="t", model="m"))
    probe = vectors[0] + rng.normal(scale=0.05, size=128).astype(np.float32)
    assert _within(vectors, probe, 1.0) <= set(ann.near(ann.view(segment), probe, 1.0).tolist())
