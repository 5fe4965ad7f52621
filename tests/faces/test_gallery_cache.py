"""A worker keeps the galleries it used lately, not every event it ever matched."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from app.faces.galleries import EventGallery, GalleryCache


def _gallery(faces: int, tmp_path: Path) -> EventGallery:
    """A gallery holding ``faces`` faces in this process's memory."""
    gallery = EventGallery(folder=tmp_path, event_id=1, token="t", model="m", segment_faces=10**6)
    vectors = np.random.default_rng(faces).normal(size=(faces, 128)).astype(np.float32)
    ids = np.arange(1, faces + 1)
    gallery.refresh(
        current=faces, load=lambda _after, _upto: iter([(ids, ids, vectors)]), run=lambda task: task()
    )
    return gallery


def test_a_gallery_is_found_by_event_and_model(tmp_path: Path) -> None:
    cache = GalleryCache(max_faces=100, max_idle=60)
    gallery = _gallery(3, tmp_path)
    cache.put((1, "m"), gallery)
    assert cache.get((1, "m")) is gallery
    assert cache.get((1, "other model")) is None


def test_the_least_recently_used_galleries_go_when_the_cache_holds_too_many_faces(tmp_path: Path) -> None:
    cache = GalleryCache(max_faces=10, max_idle=60)
    cache.put((1, "m"), _gallery(4, tmp_path))
    cache.put((2, "m"), _gallery(4, tmp_path))
    assert cache.get((1, "m")) is not None  # event 1 used again: event 2 is now the oldest
    cache.put((1, "m"), _gallery(4, tmp_path))
    cache.put((3, "m"), _gallery(4, tmp_path))
    assert cache.get((2, "m")) is None
    assert cache.get((1, "m")) is not None and cache.get((3, "m")) is not None


def test_one_gallery_larger_than_the_bound_is_still_kept_for_its_event(tmp_path: Path) -> None:
    cache = GalleryCache(max_faces=2, max_idle=60)
    cache.put((1, "m"), _gallery(5, tmp_path))
    assert cache.get((1, "m")) is not None


def test_a_gallery_unused_for_longer_than_the_idle_time_goes(tmp_path: Path) -> None:
    cache = GalleryCache(max_faces=100, max_idle=0.05)
    cache.put((1, "m"), _gallery(2, tmp_path))
    time.sleep(0.1)
    assert cache.get((1, "m")) is None
    assert len(cache) == 0
