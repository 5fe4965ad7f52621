"""An event's gallery as a face worker keeps it, on the real devset descriptors: caught up in
commit order without counting faces, deleted faces never matched, and large events searched
in memory-mapped ANN segments with the answers of exact search."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, event, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import session_scope
from app.faces import ann, search
from app.faces import service as faces_service
from app.faces.models import Face
from app.faces.providers import get_face_provider
from app.faces.providers.base import DetectedFace, FaceBox
from app.faces.providers.local import LocalProvider
from app.photos.models import Photo
from tests.conftest import IS_POSTGRES
from tests.faces.stored import add_photo, exact, matched, split, store
from tools.match_scoring import Indexed


class Statements:
    """The SQL a session sends while this is open."""

    def __init__(self, session: Session) -> None:
        self.sql: list[str] = []
        self.bind = session.get_bind()

    def __enter__(self) -> Statements:
        event.listen(self.bind, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.bind, "before_cursor_execute", self._record)

    def _record(self, _conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        self.sql.append(statement.lower())


def test_faces_stored_after_a_lookup_are_found_by_the_next_one_without_counting_faces(
    session: Session, event: dict[str, Any], organizer: dict[str, Any], devset: tuple[Indexed, Any]
) -> None:
    indexed, probes = devset
    total, half = len(indexed.gallery), split(indexed, len(indexed.gallery) // 2)
    photos = store(session, event["id"], organizer["id"], indexed, range(half))
    for probe in probes.values():
        matched(session, event["id"], probe)
    photos |= store(session, event["id"], organizer["id"], indexed, range(half, total))
    with Statements(session) as seen:
        for person, probe in probes.items():
            assert matched(session, event["id"], probe) == exact(indexed, probe, photos), person
    assert not [s for s in seen.sql if "count(" in s]
    face_reads = [s for s in seen.sql if s.startswith("select faces.id, faces.seq")]
    assert len(face_reads) == 1  # the new faces, once, then nothing for the other guests


def test_a_face_committed_with_a_lower_id_than_faces_already_loaded_is_found(
    session: Session, event: dict[str, Any], organizer: dict[str, Any], devset: tuple[Indexed, Any]
) -> None:
    """Two workers: one takes a face id, the other stores and commits faces with higher ids,
    then the first commits. Numbers (``seq``) follow commits, not ids."""
    indexed, probes = devset
    person, probe = next(iter(probes.items()))
    late = next(
        i
        for i in range(len(indexed.gallery))
        if int(indexed.gallery.photo_ids[i]) in _photos_of(indexed, probe)
    )
    photos: dict[int, int] = {}
    for row in (i for i in range(len(indexed.gallery)) if i != late):
        photos |= store(session, event["id"], organizer["id"], indexed, range(row, row + 1))
    matched(session, event["id"], probe)  # the gallery is loaded
    photos |= store(session, event["id"], organizer["id"], indexed, range(late, late + 1))
    last = session.scalars(select(Face.id).order_by(Face.seq.desc()).limit(1)).one()
    lowest = session.scalars(select(Face.id).order_by(Face.id).limit(1)).one()
    session.execute(update(Face).where(Face.id == last).values(id=lowest - 1))
    session.commit()
    assert photos[int(indexed.gallery.photo_ids[late])] in matched(session, event["id"], probe), person


def _photos_of(indexed: Indexed, probe: np.ndarray) -> set[int]:
    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    return {photo for _f, photo, _d in indexed.gallery.match(probe, threshold=provider.threshold)}


def test_a_photo_deleted_after_its_faces_were_loaded_is_nevermatched(
    session: Session, event: dict[str, Any], devset: tuple[Indexed, Any], devset_photos: dict[int, int]
) -> None:
    _indexed, probes = devset
    photos = devset_photos
    person, probe = next(iter(probes.items()))
    before = matched(session, event["id"], probe)
    assert before, person
    gone = min(before)
    session.execute(delete(Photo).where(Photo.id == gone))
    session.commit()
    assert matched(session, event["id"], probe) == before - {gone}
    assert gone in photos.values()


def test_a_large_event_is_searched_in_mapped_segments_with_the_answers_of_exact_search(
    session: Session,
    event: dict[str, Any],
    organizer: dict[str, Any],
    devset: tuple[Indexed, Any],
    inline_segments: Path,
) -> None:
    indexed, probes = devset
    total = len(indexed.gallery)
    assert total > 2 * 5
    tail = split(indexed, total - 3)
    photos = store(session, event["id"], organizer["id"], indexed, range(tail))
    for probe in probes.values():
        matched(session, event["id"], probe)  # the faces past 5 become a segment
    photos |= store(session, event["id"], organizer["id"], indexed, range(tail, total))
    written = sorted(p.name for p in inline_segments.glob("*.usearch"))
    assert written, "no segment was written"

    search.galleries.clear()  # a new worker process of this node
    with Statements(session) as seen:
        for person, probe in probes.items():
            assert matched(session, event["id"], probe) == exact(indexed, probe, photos), person
    gallery = search.galleries.get((event["id"], get_face_provider().model))
    assert gallery is not None and gallery.segments
    assert len(gallery) < total  # only the faces after the last segment are in its memory
    assert gallery.faces() == total
    # It read only the faces after the node's segments: the whole range of 5 there was, as a
    # segment of its own, then the rest.
    after = len(written) * 5
    assert len(gallery.segments) == len(written) + (total - after) // 5
    assert sum(s.startswith("select faces.id, faces.seq") for s in seen.sql) == 1 + (total - after) // 5
    for person, probe in probes.items():  # "not me" on a photo: the expansion goes on without it
        mine = matched(session, event["id"], probe)
        for photo in mine:
            expected = exact(indexed, probe, photos, not_me={photo})
            assert matched(session, event["id"], probe, not_me={photo}) == expected, person


def test_a_new_node_segments_every_whole_range_before_its_first_answer_and_holds_less_than_one(
    session: Session,
    event: dict[str, Any],
    devset: tuple[Indexed, Any],
    inline_segments: Path,
    devset_photos: dict[int, int],
) -> None:
    indexed, probes = devset
    total, photos = len(indexed.gallery), devset_photos
    person, probe = next(iter(probes.items()))
    assert matched(session, event["id"], probe) == exact(indexed, probe, photos), person
    gallery = search.galleries.get((event["id"], get_face_provider().model))
    assert gallery is not None
    assert [(s.first, s.last) for s, _ in gallery.segments] == [(n, n + 5) for n in range(0, total - 4, 5)]
    assert len(gallery) == total % 5  # the rest, fewer than a segment's worth, in memory
    assert len(list(inline_segments.glob("*.usearch"))) == total // 5


def test_segments_are_named_by_the_event_token_so_a_reused_event_id_never_maps_old_ones(
    tmp_path: Path,
) -> None:
    vectors = np.random.default_rng(7).normal(size=(20, 128)).astype(np.float32)
    old = ann.stem(event_id=3, token="aaaa", model="sface")
    ann.write_segment(tmp_path, old, first=0, last=20, blocks=[(np.arange(1, 21), vectors)])
    assert ann.segments(tmp_path, ann.stem(event_id=3, token="bbbb", model="sface")) == []
    assert [(s.first, s.last) for s in ann.segments(tmp_path, old)] == [(0, 20)]


@pytest.mark.skipif(not IS_POSTGRES, reason="two writers at once: PostgreSQL only (SQLite has one)")
def test_a_second_worker_storing_faces_of_the_event_waits_for_the_first_to_commit(
    session: Session, event: dict[str, Any], organizer: dict[str, Any], devset: tuple[Indexed, Any]
) -> None:
    """Worker A stores a face and keeps its transaction open; worker B's face of the same
    event gets its number only once A has committed, so a reader never sees B's number
    without A's face."""
    indexed, _probes = devset
    provider = get_face_provider()
    face = DetectedFace(box=FaceBox(0, 0, 10, 10), descriptor=indexed.gallery.vectors[0])
    first, second = (add_photo(session, event["id"], organizer["id"], n) for n in (1, 2))
    session.commit()
    committed: list[str] = []
    with session_scope() as a:
        faces_service.store_faces(
            session=a, photo_id=first, event_id=event["id"], faces=[face], provider=provider
        )

        def worker_b() -> None:
            with session_scope() as b:
                faces_service.store_faces(
                    session=b, photo_id=second, event_id=event["id"], faces=[face], provider=provider
                )
            committed.append("b")

        thread = threading.Thread(target=worker_b)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "B numbered its face while A's transaction was open"
        committed.append("a")
    thread.join(timeout=30)
    assert committed == ["a", "b"]
    seqs = dict(session.execute(select(Face.photo_id, Face.seq).where(Face.event_id == event["id"])).all())
    assert seqs[first] < seqs[second]


def _segmented_event(session: Session, event_id: int, organizer_id: int, indexed: Indexed) -> dict[int, int]:
    """The devset stored in the event and searched once: segments of 5 faces on this node."""
    photos = store(session, event_id, organizer_id, indexed, range(len(indexed.gallery)))
    matched(session, event_id, indexed.gallery.vectors[0])
    return photos


def test_a_deleted_photo_leaves_no_copy_of_its_faces_in_the_nodes_segments(
    session: Session,
    event: dict[str, Any],
    organizer: dict[str, Any],
    devset: tuple[Indexed, Any],
    inline_segments: Path,
) -> None:
    indexed, probes = devset
    photos = _segmented_event(session, event["id"], organizer["id"], indexed)
    (name,) = ann.galleries(inline_segments)
    before = ann.segments(inline_segments, name)
    held = {int(k) for s in before for k in ann.keys(s)}
    gone = next(
        p for p in photos.values() if session.scalar(select(Face.id).where(Face.photo_id == p)) in held
    )
    gone_faces = set(session.scalars(select(Face.id).where(Face.photo_id == gone)))
    session.execute(delete(Photo).where(Photo.id == gone))
    session.commit()

    assert search.sweep_node(session=session) == (0, 1)
    after = ann.segments(inline_segments, name)
    assert sorted(s.generation for s in after) == sorted([0] * (len(before) - 1) + [1])
    assert not gone_faces & {int(k) for s in after for k in ann.keys(s)}
    assert len(list(inline_segments.glob("*.usearch"))) == len(before)  # the old generation went
    for person, probe in probes.items():  # a worker that mapped the old file takes the new one
        expected = exact(indexed, probe, photos) - {gone}
        assert matched(session, event["id"], probe) == expected, person
    assert search.sweep_node(session=session) == (0, 0)


def test_the_segments_of_an_event_whose_faces_are_gone_are_deleted_from_the_node(
    session: Session,
    event: dict[str, Any],
    organizer: dict[str, Any],
    devset: tuple[Indexed, Any],
    inline_segments: Path,
) -> None:
    """On the node that purges it at once; on every other node at its next sweep."""
    indexed, _probes = devset
    _segmented_event(session, event["id"], organizer["id"], indexed)
    assert list(inline_segments.glob("*.usearch"))
    erase = search.forget_gallery(session=session, event_id=event["id"])
    session.commit()
    elsewhere = inline_segments.parent / "another-node"
    shutil.copytree(inline_segments, elsewhere)
    erase()
    assert not list(inline_segments.glob("*"))
    assert search.galleries.get((event["id"], get_face_provider().model)) is None

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GALLERY_DIR", str(elsewhere))
        get_settings.cache_clear()
        assert search.sweep_node(session=session) == (1, 0)
    assert not list(elsewhere.glob("*.usearch"))
