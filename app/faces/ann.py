"""Approximate nearest-neighbour segments of an event's faces (usearch HNSW), in node-local
files every face worker of the node maps read-only.

An event's faces of one model are cut into segments by their commit-order number
(``faces.seq``): ``<event>-<token>-<model>-<after>-<last>.usearch`` holds the faces numbered
``after < seq <= last``, keyed by face id; the next segment starts where it ends. A segment
is written once, by one process of the node (a lock file), and never changed: a process maps
it (``view``: the pages are the kernel's page cache, shared by every process of the node), so
memory does not grow with the workers.
The faces after the last segment are searched exactly in memory (``app.faces.galleries``).

Vectors are stored as int8 (a quarter of the bytes of the float32 descriptors; the search
only needs them to rank), and every candidate is re-ranked with its exact stored descriptor
by the caller, so a distance reported to anyone is never an approximate one. Segments
written as float16 by an earlier version are still searched, until a compaction rewrites
them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from usearch.compiled import ScalarKind
from usearch.index import Index

from app.faces.matching import DESCRIPTOR_SIZE

# HNSW graph degree and build/search beams (docs/SCALE.md). On the marathon's 1.5M faces, 16
# links a node and a search beam of 256 find every planted real photo and 0.998 of what exact
# search matches for 1,000 runners; 12 links (12 % fewer bytes) missed a planted photo in one
# of two builds even at 256, and a beam of 128 misses more. The node's searcher holds the
# segments once, so the bytes matter less than the recall.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256
# Searched this much further than asked (int8 rounding moves a distance by at most 0.01 on
# 128 values, docs/SCALE.md).
MARGIN = 0.05
_FIRST_COUNT = 64

_RANGE = re.compile(r"^(\d+)-(\d+)(?:-g(\d+))?\.usearch$")
_OWNER = re.compile(r"^\.?(\d+)-([0-9a-f]+)-")


@dataclass(frozen=True)
class Segment:
    path: Path
    first: int
    last: int
    generation: int = 0  # rewritten without the faces deleted since (``compact``)


def stem(*, event_id: int, token: str, model: str) -> str:
    """The name shared by a gallery's segments (the event's token tells apart two events that
    had the same id)."""
    return f"{event_id}-{token}-" + re.sub(r"[^A-Za-z0-9_.]", "_", model)


def segments(folder: Path, name: str) -> list[Segment]:
    """The segments of gallery ``name`` (``stem``) on this node, in seq order (of a range
    rewritten, its latest generation)."""
    latest: dict[tuple[int, int], Segment] = {}
    prefix = name + "-"
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            m = _RANGE.match(entry.name[len(prefix) :]) if entry.name.startswith(prefix) else None
            if m:
                found = Segment(Path(entry.path), int(m[1]), int(m[2]), int(m[3] or 0))
                key = (found.first, found.last)
                if key not in latest or latest[key].generation < found.generation:
                    latest[key] = found
    return sorted(latest.values(), key=lambda s: s.first)


def galleries(folder: Path) -> dict[str, tuple[int, str]]:
    """Every gallery with files in ``folder``: its ``stem`` -> (event id, token)."""
    found: dict[str, tuple[int, str]] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            owner = _OWNER.match(entry.name)
            tail = re.search(r"-\d+-\d+(?:-g\d+)?\.usearch$", entry.name)
            if owner and tail:
                found[entry.name[: tail.start()]] = (int(owner[1]), owner[2])
    return found


def remove(folder: Path, name: str) -> int:
    """Delete every file of gallery ``name`` on this node (processes that map one keep it
    until they let it go); how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.startswith((name + "-", f".{name}.")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def keys(segment: Segment) -> np.ndarray:
    """The face ids a segment holds."""
    return np.asarray(view(segment, lookups=True).keys, dtype=np.int64)


def view(segment: Segment, *, lookups: bool = False) -> Index:
    """The segment mapped read-only (nothing is copied into this process). Without
    ``lookups`` usearch builds no key -> node table (about 50 bytes a face in this process's
    own memory): a search reads the keys it returns from the nodes; only listing the keys
    (``keys``) needs the table."""
    index = Index.restore(
        str(segment.path), view=True, expansion_search=EXPANSION_SEARCH, enable_key_lookups=lookups
    )
    if index is None:
        raise ValueError(f"{segment.path} is not a usearch index")
    return index


@contextlib.contextmanager
def _writer_lock(folder: Path, name: str, *, wait: bool) -> Iterator[bool]:
    """Whether this process may write the gallery's next segment (one writer per node);
    ``wait``: until the other writer is done."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f".{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


#: How a segment stores its vectors (only to rank: candidates are re-ranked exactly): each
#: component c as round(127 c). Every model's components lie within [-1, 1] (SFace's
#: descriptors are unit length; dlib's stay within 0.5). Quantised here rather than by
#: usearch, whose own cast first scales each vector to unit length: that changes euclidean
#: distances, so a radius would no longer mean one.
DTYPE = "i8"
_STEPS = 127.0


def _encode(vectors: np.ndarray) -> np.ndarray:
    scaled = np.rint(np.asarray(vectors, dtype=np.float32) * _STEPS)
    encoded: np.ndarray = np.clip(scaled, -_STEPS, _STEPS).astype(np.int8)
    return encoded


def _build(blocks: Iterable[tuple[np.ndarray, np.ndarray]], threads: int) -> Index:
    """An index of the faces of ``blocks`` ((ids, float vectors) pairs, added one block at a
    time: a range read from the database is never held whole)."""
    index = Index(
        ndim=DESCRIPTOR_SIZE,
        metric="l2sq",
        dtype=DTYPE,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    for ids, vectors in blocks:
        if len(ids):
            index.add(np.asarray(ids, dtype=np.uint64), _encode(vectors), threads=threads)
    return index


def _save(index: Index, final: Path) -> None:
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    index.save(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, final)


def write_segment(
    folder: Path,
    name: str,
    *,
    first: int,
    last: int,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    threads: int = 1,
    wait: bool = False,
) -> Segment | None:
    """Write the faces numbered ``first < seq <= last`` (``blocks`` of ids and vectors) as the
    gallery's next segment; None
    when another process of the node is writing one (``wait``: once it is done) or wrote it:
    the caller reads the folder again."""
    with _writer_lock(folder, name, wait=wait) as mine:
        if not mine:
            return None
        done = segments(folder, name)
        if (done[-1].last if done else 0) != first:
            return None
        final = folder / f"{name}-{first}-{last}.usearch"
        _save(_build(blocks, threads), final)
        return Segment(final, first, last)


def compact(
    folder: Path, name: str, segment: Segment, *, blocks: Iterable[tuple[np.ndarray, np.ndarray]]
) -> Segment | None:
    """Rewrite ``segment`` with only the faces of ``blocks`` (those still stored) as its next
    generation, and delete the older one: a deleted face leaves no copy on the node. None when
    another process is writing (the next sweep tries again)."""
    with _writer_lock(folder, name, wait=False) as mine:
        if not mine:
            return None
        final = folder / f"{name}-{segment.first}-{segment.last}-g{segment.generation + 1}.usearch"
        _save(_build(blocks, threads=1), final)
        os.unlink(segment.path)
        return Segment(final, segment.first, segment.last, segment.generation + 1)


def near(index: Index, query: np.ndarray, radius: float) -> np.ndarray:
    """Face ids (keys) whose approximate distance to ``query`` is within ``radius`` plus the
    margin: the search widens until its farthest answer is beyond that."""
    size = len(index)
    if size == 0:
        return np.empty(0, dtype=np.int64)
    limit = (radius + MARGIN) ** 2
    if index.dtype == ScalarKind.I8:
        query, limit = _encode(query), limit * _STEPS**2
    count = min(_FIRST_COUNT, size)
    while True:
        found = index.search(query, count)
        keys = np.asarray(found.keys, dtype=np.int64)
        distances = np.asarray(found.distances, dtype=np.float64)
        if count >= size or len(keys) < count or distances[-1] > limit:
            return keys[distances <= limit]
        count = min(count * 4, size)
