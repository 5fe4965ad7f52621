"""The event galleries a face worker keeps between lookups (no database access here: the
caller, ``faces.service``, reads the rows).

A gallery is one event's faces of one model: the ANN segments of this node
(``app.faces.ann``, memory-mapped, shared by the node's processes) plus the faces stored
after the last segment, held exactly (float32) in this process. It knows the commit-order
number (``faces.seq``) up to which it holds every face, so catching up reads only the faces
stored since, never counts, and never reloads when workers commit out of id order. Once the
faces outside the segments reach ``segment_faces``, a background thread writes them as the
next segment and the process keeps only what came after.

A lookup returns candidate face ids; the caller re-reads their exact descriptors (a face
deleted meanwhile is simply not found) and matches on those.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from usearch.index import Index

from app.faces import ann
from app.faces.matching import DESCRIPTOR_SIZE, Gallery, within

log = logging.getLogger("app.faces.galleries")

#: ``load(after, upto)``: the faces numbered ``after < seq <= upto``, in blocks of (ids, seqs,
#: vectors) in seq order.
Loader = Callable[[int, int], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]
#: Runs a segment write (a background thread in production, inline in tests).
Runner = Callable[[Callable[[], None]], object]


class _Rows:
    """The faces after the last segment: exact float32, appended in seq order. A
    :class:`Gallery` holds them (amortised appends), its photo column carrying each face's
    seq."""

    def __init__(self, dim: int) -> None:
        self._faces = Gallery(dim=dim)

    def __len__(self) -> int:
        return len(self._faces)

    @property
    def ids(self) -> np.ndarray:
        return self._faces.ids

    @property
    def vectors(self) -> np.ndarray:
        return self._faces.vectors

    @property
    def sq_norms(self) -> np.ndarray:
        return self._faces.sq_norms

    def append(self, ids: np.ndarray, seqs: np.ndarray, vectors: np.ndarray) -> None:
        self._faces.append(ids, seqs, vectors)

    def reserve(self, faces: int) -> None:
        """Room for the ``faces`` a first load reads, without growing by copies (pages never
        written are never resident, so an upper bound costs nothing); later catch-ups grow
        geometrically."""
        if not len(self._faces):
            self._faces.reserve(faces)

    def drop_through(self, seq: int) -> None:
        keep = self._faces.photo_ids > seq
        if not keep.all():
            kept = Gallery(dim=self._faces.dim, capacity=int(keep.sum()))
            kept.append(self.ids[keep], self._faces.photo_ids[keep], self.vectors[keep])
            self._faces = kept


class EventGallery:
    """One event's faces of one model, as this process searches them."""

    def __init__(self, *, folder: Path, event_id: int, token: str, model: str, segment_faces: int) -> None:
        self.folder = folder
        self.event_id = event_id
        self.token = token
        self.name = ann.stem(event_id=event_id, token=token, model=model)
        self.segment_faces = segment_faces
        self.seq = 0  # every face numbered up to here is searchable
        self.segments: list[tuple[ann.Segment, Index]] = []
        self.rows = _Rows(DESCRIPTOR_SIZE)
        self._writing = False

    @property
    def segmented_through(self) -> int:
        return self.segments[-1][0].last if self.segments else 0

    def __len__(self) -> int:
        """Faces held in this process's own memory (the segments are the node's)."""
        return len(self.rows)

    def faces(self) -> int:
        return len(self.rows) + sum(len(index) for _, index in self.segments)

    def _take_segments(self) -> None:
        held = {(s.first, s.last): i for i, (s, _) in enumerate(self.segments)}
        for segment in ann.segments(self.folder, self.name):
            at = held.get((segment.first, segment.last))
            if at is not None and self.segments[at][0].path != segment.path:  # compacted
                self.segments[at] = (segment, ann.view(segment))
            elif at is None and segment.first == self.segmented_through:  # the next link
                self.segments.append((segment, ann.view(segment)))
        self.rows.drop_through(self.segmented_through)

    def refresh(self, *, current: int, load: Loader, run: Runner) -> None:
        """Take the node's new segments, then the faces stored up to ``current``."""
        self._take_segments()
        after = max(self.seq, self.segmented_through)
        if not len(self.rows):
            # A node that never segmented this event (a new node, a wiped cache): its faces
            # are read and written as segments one whole range at a time, streamed into the
            # segment being built, so the process holds at most one range's index and then
            # fewer than a segment's worth of faces; on every core, as the search waits for
            # it (a segment written in the background, below, takes one).
            while current - after >= self.segment_faces:
                upto = after + self.segment_faces
                ann.write_segment(
                    self.folder,
                    self.name,
                    first=after,
                    last=upto,
                    blocks=((ids, vectors) for ids, _seqs, vectors in load(after, upto)),
                    wait=True,
                    threads=os.cpu_count() or 1,
                )
                self._take_segments()
                if self.segmented_through != upto:
                    raise RuntimeError(f"{self.name}: segment {after}-{upto} is missing after writing it")
                after = upto
        if current > after:
            self.rows.reserve(current - after)  # seqs are dense: at most this many faces
            for ids, seqs, vectors in load(after, current):
                self.rows.append(ids, seqs, vectors)
        self.seq = max(self.seq, current, self.segmented_through)
        if len(self.rows) >= self.segment_faces and not self._writing:
            self._write_segment(run)

    def _write_segment(self, run: Runner) -> None:
        first, last = self.segmented_through, self.seq
        # Views, not copies (100 MB at 200,000 faces): the rows only ever append past them or
        # move to new buffers, so what the writer reads does not change under it.
        ids, vectors = self.rows.ids, self.rows.vectors
        self._writing = True

        def write() -> None:
            started = time.monotonic()
            try:
                segment = ann.write_segment(
                    self.folder, self.name, first=first, last=last, blocks=[(ids, vectors)]
                )
                if segment is not None:
                    log.info(
                        "event %d: segment of %d faces (%s) written in %.1f s",
                        self.event_id,
                        len(ids),
                        segment.path.name,
                        time.monotonic() - started,
                    )
            except Exception:
                log.exception("event %d: writing a gallery segment failed", self.event_id)
            finally:
                self._writing = False

        run(write)

    def candidates(self, query: np.ndarray, radius: float) -> np.ndarray:
        """Ids of the faces that may be within ``radius`` of ``query`` (a superset: the caller
        measures them exactly)."""
        found = [ann.near(index, query, radius) for _, index in self.segments]
        if len(self.rows):
            inside, _ = within(self.rows.vectors, self.rows.sq_norms, query, radius)
            found.append(self.rows.ids[inside])
        if not found:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(found))


class GalleryCache:
    """The galleries this process has loaded. The least recently used go first once the
    cache holds more than ``max_faces`` faces in this process's memory, and any gallery
    unused for ``max_idle`` seconds goes at the next lookup (its segments are unmapped)."""

    def __init__(self, *, max_faces: int, max_idle: float) -> None:
        self.max_faces = max_faces
        self.max_idle = max_idle
        self._entries: OrderedDict[tuple[int, str], tuple[EventGallery, float]] = OrderedDict()
        self._lock = threading.Lock()  # the node's searcher looks up from a thread per worker

    def get(self, key: tuple[int, str]) -> EventGallery | None:
        now = time.monotonic()
        with self._lock:
            for stale in [k for k, (_, used) in self._entries.items() if now - used > self.max_idle]:
                del self._entries[stale]
            entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: tuple[int, str], gallery: EventGallery) -> None:
        with self._lock:
            self._entries[key] = (gallery, time.monotonic())
            self._entries.move_to_end(key)
            total = sum(len(g) for g, _ in self._entries.values())
            while total > self.max_faces and len(self._entries) > 1:
                _, (evicted, _) = self._entries.popitem(last=False)
                total -= len(evicted)

    def __len__(self) -> int:
        return len(self._entries)

    def drop(self, event_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == event_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gallery-segment")


def in_background(task: Callable[[], None]) -> object:
    """The production runner of segment writes: one thread per process."""
    return _writer.submit(task)


def wait_for_writes() -> None:
    """Until the segment writes submitted so far are done (benchmarks, shutdown)."""
    _writer.submit(lambda: None).result()
