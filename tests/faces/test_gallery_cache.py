"""A worker keeps the galleries it used lately, not every event it ever matched."""

from __future__ import annotations

import time

import numpy as np

from app.faces.matching import Gallery, GalleryCache


def _gallery(faces: int, first_id: int = 1) -> Gallery:
    gallery = Gallery()
    ids = np.arange(first_id, first_id + faces, dtype=np.int64)
    gallery.append(ids, ids, np.random.default_rng(faces).normal(size=(faces, 128)).astype(np.float32))
    return gallery


def test_a_gallery_is_found_with_the_last_face_id_read() -> None:
    cache = GalleryCache(max_faces=100, max_idle=60)
    gallery = _gallery(3)
    cache.put((1, "m"), gallery, 3)
    assert cache.get((1, "m")) == (gallery, 3)
    assert cache.get((1, "other model")) is None


def test_the_least_recently_used_galleries_go_when_the_cache_holds_too_many_faces() -> None:
    cache = GalleryCache(max_faces=10, max_idle=60)
    cache.put((1, "m"), _gallery(4), 4)
    cache.put((2, "m"), _gallery(4), 4)
    assert cache.get((1, "m")) is not None  # event 1 used again: event 2 is now the oldest
    cache.put((1, "m"), _gallery(4), 4)
    cache.put((3, "m"), _gallery(4), 4)
    assert cache.get((2, "m")) is None
    assert cache.get((1, "m")) is not None and cache.get((3, "m")) is not None


def test_one_gallery_larger_than_the_bound_is_still_kept_for_its_event() -> None:
    cache = GalleryCache(max_faces=2, max_idle=60)
    cache.put((1, "m"), _gallery(5), 5)
    assert cache.get((1, "m")) is not None


def test_a_gallery_unused_for_longer_than_the_idle_time_goes() -> None:
    cache = GalleryCache(max_faces=100, max_idle=0.05)
    cache.put((1, "m"), _gallery(2), 2)
    time.sleep(0.1)
    assert cache.get((1, "m")) is None
    assert len(cache) == 0
