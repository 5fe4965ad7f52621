"""The node's gallery searcher (``app.faces.searcher``), a real process: a worker finds through
it exactly what it would find in its own memory, without holding the gallery; it searches
itself when the searcher is gone or is not its node's; a purged event's segments are let go at
once; the face-worker pool runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.faces import search, searcher
from app.faces.providers import get_face_provider
from tests.faces.stored import exact, matched
from tests.jobs.test_worker_crash import start_worker, wait_for
from tools.match_scoring import Indexed

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parents[2]


def _answers() -> bool:
    """Whether this process's lookups go to a searcher (an event without faces: no ids)."""
    ids = searcher.candidates(event_id=0, model="none", probe=np.zeros(128, np.float32), radius=0.5)
    return ids is not None and len(ids) == 0


@pytest.fixture
def node_searcher(inline_segments: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The searcher of this node, as the pool starts it, with the test's settings."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from app.worker import searcher_main; searcher_main(-1, 0)"],
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
    )
    try:
        wait_for(_answers, 60, "the gallery searcher")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        assert not searcher.address(get_settings()).exists()


def test_a_worker_finds_through_the_node_searcher_what_it_finds_in_its_own_memory(
    session: Session,
    event: dict[str, Any],
    devset: tuple[Indexed, dict[str, np.ndarray]],
    devset_photos: dict[int, int],
    inline_segments: Path,
    node_searcher: subprocess.Popen[bytes],
) -> None:
    indexed, probes = devset
    photos = devset_photos
    for person, probe in probes.items():
        assert matched(session, event["id"], probe) == exact(indexed, probe, photos), person
    assert search.galleries.get((event["id"], get_face_provider().model)) is None  # not held here
    assert list(inline_segments.glob("*.usearch")), "the searcher wrote the node's segments"

    node_searcher.kill()  # gone: the worker searches in its own memory, with the same answers
    node_searcher.wait(timeout=30)
    for person, probe in probes.items():
        assert matched(session, event["id"], probe) == exact(indexed, probe, photos), person
    assert search.galleries.get((event["id"], get_face_provider().model)) is not None
    searcher.address(get_settings()).unlink()


@pytest.mark.usefixtures("devset_photos")  # stored before the lookup
def test_the_searcher_lets_a_purged_event_go_at_once(
    session: Session,
    event: dict[str, Any],
    devset: tuple[Indexed, dict[str, np.ndarray]],
    inline_segments: Path,
    node_searcher: subprocess.Popen[bytes],
) -> None:
    _indexed, probes = devset
    matched(session, event["id"], next(iter(probes.values())))
    maps = Path(f"/proc/{node_searcher.pid}/maps")
    assert str(inline_segments) in maps.read_text()  # the searcher maps the event's segments

    erase = search.forget_gallery(session=session, event_id=event["id"])
    session.commit()
    erase()
    assert not list(inline_segments.glob("*.usearch"))
    wait_for(lambda: str(inline_segments) not in maps.read_text(), 10, "the searcher to unmap them")


def test_a_worker_with_another_signing_key_is_refused_and_searches_itself(
    node_searcher: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(get_settings(), "secret_key", "another-node-" + "k" * 40)
        assert (
            searcher.candidates(event_id=0, model="none", probe=np.zeros(128, np.float32), radius=0.5) is None
        )
    assert _answers()  # and it still serves the workers of its node
    assert node_searcher.poll() is None


def test_the_face_worker_pool_runs_the_searcher_and_stops_it_with_itself() -> None:
    pool = start_worker()
    try:
        wait_for(_answers, 90, "the pool's gallery searcher")
    finally:
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(timeout=60) == 0
    assert not _answers()
    assert not searcher.address(get_settings()).exists()
