"""Searching an event's faces near a selfie, and the queries behind it.

Each worker process keeps the galleries it has used lately (``app.faces.galleries``: exact
float32 faces in memory, plus the node's memory-mapped ANN segments of large events) and, at
each lookup, reads only the faces stored since: the event's counter (``event_galleries.seq``,
one primary-key read) says whether any were, and faces are numbered in commit order
(:func:`number_faces`), so one committed out of id order is never missed. A lookup gives
candidates; their exact descriptors are read back here, so the distances are exact and a face
deleted meanwhile never matches.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection, Iterator

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import upsert_insert
from app.faces import ann, searcher
from app.faces.galleries import EventGallery as LoadedGallery
from app.faces.galleries import GalleryCache, Runner, in_background
from app.faces.matching import Gallery, columns, from_blob, from_blobs
from app.faces.models import EventGallery, Face
from app.faces.providers.base import FaceRef

log = logging.getLogger("app.faces.search")

#: About 0.5 GB of float32 descriptors of 128 values per process at most (the segments are
#: mapped, not counted); an hour unused.
galleries = GalleryCache(max_faces=1_000_000, max_idle=3600.0)
#: Faces read from the database this many at a time.
_READ_BLOCK = 4096
#: How a segment is written (tests write it inline).
segment_runner: Runner = in_background


def number_faces(*, session: Session, event_id: int, count: int) -> int:
    """Take ``count`` numbers of the event's counter; the last. The counter's row stays
    locked until this transaction ends, so numbers are handed out in commit order."""
    stmt = (
        upsert_insert(session, EventGallery)
        .values(event_id=event_id, seq=count, token=secrets.token_hex(8))
        .on_conflict_do_update(index_elements=["event_id"], set_={"seq": EventGallery.seq + count})
        .returning(EventGallery.seq)
    )
    return int(session.execute(stmt).scalar_one())


def _faces_numbered(
    session: Session, event_id: int, model: str, after: int, upto: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The event's faces of ``model`` numbered ``after < seq <= upto``, in seq order, in
    blocks of (ids, seqs, vectors) streamed from the database (a server-side cursor on
    PostgreSQL): a new node reads 200,000 at a time, which as rows would take a gigabyte."""
    rows = session.execute(
        select(Face.id, Face.seq, Face.descriptor)
        .where(Face.event_id == event_id, Face.seq > after, Face.seq <= upto, Face.model == model)
        .order_by(Face.seq),
        execution_options={"yield_per": _READ_BLOCK},
    )
    for block in rows.partitions():
        ids, seqs, descriptors, _ends = columns(block)
        yield ids, seqs, from_blobs(descriptors, count=len(ids))


def event_gallery(*, session: Session, event_id: int, model: str) -> LoadedGallery:
    """The event's faces described by ``model`` (descriptors of other models never mix in),
    brought up to date with what is committed."""
    counter = session.execute(
        select(EventGallery.seq, EventGallery.token).where(EventGallery.event_id == event_id)
    ).one_or_none()
    seq, token = counter if counter is not None else (0, "")
    key = (event_id, model)
    gallery = galleries.get(key)
    if gallery is None or gallery.token != token:
        settings = get_settings()
        gallery = LoadedGallery(
            folder=settings.galleries_dir,
            event_id=event_id,
            token=token,
            model=model,
            segment_faces=settings.face_index_segment_faces,
        )
    gallery.refresh(
        current=seq,
        load=lambda after, upto: _faces_numbered(session, event_id, model, after, upto),
        run=segment_runner,
    )
    galleries.put(key, gallery)
    return gallery


def local_candidates(
    *, session: Session, event_id: int, model: str, probe: np.ndarray, radius: float
) -> np.ndarray:
    """Ids of the event's faces that may be within ``radius`` of ``probe``, from this
    process's own galleries (a worker without the node's searcher, or the searcher itself)."""
    return event_gallery(session=session, event_id=event_id, model=model).candidates(probe, radius)


def faces_near(*, session: Session, event_id: int, model: str, probe: np.ndarray, radius: float) -> Gallery:
    """The event's faces of ``model`` within ``radius`` of ``probe``, with their exact
    descriptors (a small gallery to match on)."""
    ids = searcher.candidates(event_id=event_id, model=model, probe=probe, radius=radius)
    if ids is None:
        ids = local_candidates(session=session, event_id=event_id, model=model, probe=probe, radius=radius)
    near = Gallery(capacity=max(1, len(ids)))
    if not len(ids):
        return near
    rows = session.execute(
        select(Face.id, Face.photo_id, Face.descriptor).where(
            Face.id.in_(ids.tolist()), Face.event_id == event_id, Face.model == model
        )
    ).all()
    if rows:
        near.append(
            np.array([r.id for r in rows], dtype=np.int64),
            np.array([r.photo_id for r in rows], dtype=np.int64),
            np.stack([from_blob(r.descriptor) for r in rows]),
        )
    return near


class EventFaces:
    """The stored faces of events as a provider looks them up (``FaceLookup``): one
    model's faces, read in the caller's session."""

    def __init__(self, *, session: Session, model: str) -> None:
        self.session = session
        self.model = model

    def near(self, event_id: int, probe: np.ndarray, radius: float) -> Gallery:
        return faces_near(
            session=self.session, event_id=event_id, model=self.model, probe=probe, radius=radius
        )

    def with_signatures(self, event_id: int, signatures: Collection[bytes]) -> list[FaceRef]:
        rows = self.session.execute(
            select(Face.id, Face.photo_id, Face.descriptor).where(
                Face.event_id == event_id,
                Face.model == self.model,
                Face.descriptor.in_(list(signatures)),
            )
        )
        return [FaceRef(r.id, r.photo_id, r.descriptor) for r in rows]


def forget_gallery(*, session: Session, event_id: int) -> Callable[[], None]:
    """The event's faces are gone (purged or deleted): its counter goes; returns what deletes
    this node's segments of it and this process's gallery, to run once committed (the other
    nodes delete theirs at their next sweep, :func:`sweep_node`)."""
    session.execute(delete(EventGallery).where(EventGallery.event_id == event_id))
    folder = get_settings().galleries_dir

    def erase() -> None:
        galleries.drop(event_id)
        searcher.forget(event_id=event_id)
        for name, (owner, _token) in ann.galleries(folder).items():
            if owner == event_id:
                ann.remove(folder, name)

    return erase


def sweep_node(*, session: Session) -> tuple[int, int]:
    """This node's segments brought in line with the database: those of events whose
    gallery is gone (purged, deleted, or an id given to a new event) are deleted, and a
    segment holding faces deleted since it was written (a photo deleted, a model switched) is
    rewritten without them, so no copy of a deleted face stays on the node. Returns (galleries
    deleted, segments rewritten)."""
    folder = get_settings().galleries_dir
    found = ann.galleries(folder)
    tokens = dict(
        session.execute(
            select(EventGallery.event_id, EventGallery.token).where(
                EventGallery.event_id.in_({event_id for event_id, _ in found.values()})
            )
        ).all()
    )
    deleted = rewritten = 0
    for name, (event_id, token) in found.items():
        if tokens.get(event_id) != token:
            ann.remove(folder, name)
            deleted += 1
            continue
        for segment in ann.segments(folder, name):
            held = set(ann.keys(segment).tolist())
            in_range = (Face.event_id == event_id, Face.seq > segment.first, Face.seq <= segment.last)
            if held <= set(session.scalars(select(Face.id).where(*in_range))):
                continue  # the usual case: only ids are read
            alive = session.execute(
                select(Face.id, Face.seq, Face.descriptor).where(*in_range),
                execution_options={"yield_per": _READ_BLOCK},
            )
            kept = ([row for row in block if row[0] in held] for block in alive.partitions())
            blocks = ((ids, from_blobs(d, count=len(ids))) for ids, _seqs, d, _ends in map(columns, kept))
            if ann.compact(folder, name, segment, blocks=blocks) is not None:
                rewritten += 1
    if deleted or rewritten:
        log.info("galleries of this node: %d deleted, %d segment(s) rewritten", deleted, rewritten)
    return deleted, rewritten
