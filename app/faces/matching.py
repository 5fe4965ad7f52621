"""Descriptor storage format and euclidean matching in numpy (no dlib, no database).

This module owns the byte format descriptors are stored in (little-endian float32) and the
in-memory search: one selfie against a set of faces (:class:`Gallery`, :func:`within`), and a
few new photo faces against many selfies (:func:`match_many`).

Distances are screened with ||a||^2 + ||b||^2 - 2 a.b in float32 (one BLAS call), with a small
margin so rounding cannot drop a true match; the few candidates are then measured exactly in
float64, so the reported distances and the threshold test are exact.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

DESCRIPTOR_SIZE = 128
_BLOB_DTYPE = np.dtype("<f4")
# Relative float32 error of the expanded form, generous for 128-d sums.
_SCREEN_TOLERANCE = 1e-5


def to_blob(vec: np.ndarray, *, size: int = DESCRIPTOR_SIZE) -> bytes:
    """Serialise one descriptor as ``size`` little-endian float32 values."""
    arr = np.asarray(vec)
    if arr.shape != (size,):
        raise ValueError(f"descriptor must have shape ({size},), not {arr.shape}")
    out = arr.astype(_BLOB_DTYPE)
    if not np.isfinite(out).all():
        raise ValueError("descriptor contains NaN or infinity")
    return out.tobytes()


def from_blob(blob: bytes, *, size: int = DESCRIPTOR_SIZE) -> np.ndarray:
    """Read a descriptor written by :func:`to_blob` as a native float32 array."""
    expected = size * _BLOB_DTYPE.itemsize
    if len(blob) != expected:
        raise ValueError(f"descriptor blob must be {expected} bytes, not {len(blob)}")
    return np.frombuffer(blob, dtype=_BLOB_DTYPE).astype(np.float32)


def columns(rows: Iterable[tuple[int, int, bytes]]) -> tuple[np.ndarray, np.ndarray, bytearray, np.ndarray]:
    """Rows of two ids and a blob, consumed one at a time (a streamed query's), as two int64
    arrays, the blobs end to end, and where each blob ends: no object per row is kept."""
    first: list[int] = []
    second: list[int] = []
    ends: list[int] = []
    blobs = bytearray()
    for a, b, blob in rows:
        first.append(a)
        second.append(b)
        blobs += blob
        ends.append(len(blobs))
    return (
        np.array(first, dtype=np.int64),
        np.array(second, dtype=np.int64),
        blobs,
        np.array(ends, dtype=np.int64),
    )


def from_blobs(
    joined: bytes | bytearray | memoryview, *, count: int, size: int = DESCRIPTOR_SIZE
) -> np.ndarray:
    """Read ``count`` descriptors written by :func:`to_blob` and joined end to end, as a
    (count, size) float32 matrix over the same bytes (no copy on a little-endian machine)."""
    expected = count * size * _BLOB_DTYPE.itemsize
    if len(joined) != expected:
        raise ValueError(f"{count} descriptor blobs must be {expected} bytes, not {len(joined)}")
    matrix: np.ndarray = np.frombuffer(joined, dtype=_BLOB_DTYPE).reshape(count, size)
    return matrix.astype(np.float32, copy=False)


def _as_matrix(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}), not {arr.shape}")
    return np.ascontiguousarray(arr)


def _screen(sq_dist: np.ndarray, scale: np.ndarray | float, threshold: float) -> np.ndarray:
    """Boolean mask of entries that may be within ``threshold`` despite float32 rounding."""
    return sq_dist <= threshold * threshold + _SCREEN_TOLERANCE * scale


class Gallery:
    """An append-only set of face descriptors with their face and photo ids.

    ``ids``, ``photo_ids`` and ``vectors`` are views of the filled part of the buffers, which
    grow geometrically so appends are amortised O(1) per face.
    """

    def __init__(self, *, dim: int = DESCRIPTOR_SIZE, capacity: int = 1024) -> None:
        self.dim = dim
        capacity = max(1, capacity)
        self._size = 0
        self._ids = np.empty(capacity, dtype=np.int64)
        self._photo_ids = np.empty(capacity, dtype=np.int64)
        self._vectors = np.empty((capacity, dim), dtype=np.float32)
        self._sq_norms = np.empty(capacity, dtype=np.float32)

    def __len__(self) -> int:
        return self._size

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self._size]

    @property
    def photo_ids(self) -> np.ndarray:
        return self._photo_ids[: self._size]

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._size]

    @property
    def sq_norms(self) -> np.ndarray:
        return self._sq_norms[: self._size]

    def append(self, ids: np.ndarray, photo_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add faces: ``ids`` and ``photo_ids`` of shape (k,), ``vectors`` of shape (k, dim)."""
        ids_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        photo_arr = np.asarray(photo_ids, dtype=np.int64).reshape(-1)
        vec_arr = _as_matrix(vectors, self.dim, "vectors")
        count = len(ids_arr)
        if len(photo_arr) != count or len(vec_arr) != count:
            raise ValueError("ids, photo_ids and vectors must have the same length")
        if not np.isfinite(vec_arr).all():
            raise ValueError("vectors contain NaN or infinity")
        self._reserve(self._size + count)
        end = self._size + count
        self._ids[self._size : end] = ids_arr
        self._photo_ids[self._size : end] = photo_arr
        self._vectors[self._size : end] = vec_arr
        self._sq_norms[self._size : end] = np.einsum("ij,ij->i", vec_arr, vec_arr)
        self._size = end

    def reserve(self, needed: int) -> None:
        """Room for ``needed`` faces in all (appends beyond it grow geometrically)."""
        self._reserve(needed, exact=True)

    def _reserve(self, needed: int, *, exact: bool = False) -> None:
        capacity = len(self._ids)
        if needed <= capacity:
            return
        while capacity < needed and not exact:
            capacity *= 2
        capacity = max(capacity, needed)
        for name in ("_ids", "_photo_ids", "_vectors", "_sq_norms"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self._size] = old[: self._size]
            setattr(self, name, new)

    def match(
        self,
        probe: np.ndarray,
        *,
        threshold: float,
        expand: float = 0.0,
        guard: float = 0.0,
        exclude_photos: Collection[int] = (),
    ) -> list[tuple[int, int, float]]:
        """Faces within ``threshold`` of ``probe``, keeping only the best face of each photo.

        Gallery-aware when ``expand`` and ``guard`` are set (average query expansion): the
        probe and the faces it matched directly are averaged, and a face within ``expand`` of
        that average and within ``guard`` of the probe matches too. A person's photos are
        closer to the average of their other photos than to one selfie, so a hard photo
        (turned, dim, compressed) is found through the easy ones. One round only, and never
        beyond ``guard`` of the probe: the search cannot walk from one person to another.
        Faces of ``exclude_photos`` ("not me") neither match nor weigh in the average.

        Returns ``(face_id, photo_id, distance to the probe)`` sorted by distance, then face id.
        """
        query = np.asarray(probe, dtype=np.float32).reshape(-1)
        if query.shape != (self.dim,):
            raise ValueError(f"probe must have shape ({self.dim},), not {query.shape}")
        if self._size == 0:
            return []
        expanding = expand > 0 and guard > threshold
        radius = guard if expanding else threshold
        candidates, distances = self._within(query, radius, exclude_photos)
        direct = distances <= threshold
        if expanding and direct.any() and not direct.all():
            average = _average(query, self.vectors[candidates[direct]])
            gap = self.vectors[candidates].astype(np.float64) - average
            direct |= np.einsum("ij,ij->i", gap, gap) <= expand * expand
        candidates, distances = candidates[direct], distances[direct]
        face_ids = self.ids[candidates]
        photo_ids = self.photo_ids[candidates]
        # Best face per photo: order by photo, then distance, then face id; take each first.
        order = np.lexsort((face_ids, distances, photo_ids))
        photo_sorted = photo_ids[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = photo_sorted[1:] != photo_sorted[:-1]
        best = order[first]
        best = best[np.lexsort((face_ids[best], distances[best]))]
        return [(int(face_ids[i]), int(photo_ids[i]), float(distances[i])) for i in best]

    def expansion_centre(
        self, probe: np.ndarray, *, threshold: float, exclude_photos: Collection[int] = ()
    ) -> np.ndarray | None:
        """The average :meth:`match` expands around (the probe and its direct matches), or
        None without a direct match. With it, the faces the expansion may add are those within
        ``expand`` of it: a large gallery fetches exactly those (``faces.search``)."""
        query = np.asarray(probe, dtype=np.float32).reshape(-1)
        candidates, _ = self._within(query, threshold, exclude_photos)
        if not candidates.size:
            return None
        return _average(query, self.vectors[candidates]).astype(np.float32)

    def union(self, other: Gallery) -> Gallery:
        """The faces of both (each face once)."""
        ids = np.concatenate([self.ids, other.ids])
        _, first = np.unique(ids, return_index=True)
        both = Gallery(dim=self.dim, capacity=len(first))
        both.append(
            ids[first],
            np.concatenate([self.photo_ids, other.photo_ids])[first],
            np.concatenate([self.vectors, other.vectors])[first],
        )
        return both

    def _within(
        self, query: np.ndarray, radius: float, exclude_photos: Collection[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indexes of the faces within ``radius`` of ``query`` and their exact distances."""
        candidates, distances = within(self.vectors, self.sq_norms, query, radius)
        if exclude_photos and candidates.size:
            excluded = np.fromiter(exclude_photos, dtype=np.int64)
            keep = ~np.isin(self.photo_ids[candidates], excluded)
            candidates, distances = candidates[keep], distances[keep]
        return candidates, distances


def _average(probe: np.ndarray, matched: np.ndarray) -> np.ndarray:
    average: np.ndarray = np.vstack([probe.astype(np.float64), matched]).mean(axis=0)
    return average


def within(
    vectors: np.ndarray, sq_norms: np.ndarray, query: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indexes of the rows of ``vectors`` (float32, with their squared norms) within
    ``radius`` of ``query``, and their exact distances."""
    query_sq = float(query @ query)
    sq_dist = sq_norms + np.float32(query_sq) - 2.0 * (vectors @ query)
    candidates = np.flatnonzero(_screen(sq_dist, sq_norms + query_sq, radius))
    diff = vectors[candidates].astype(np.float64) - query.astype(np.float64)
    distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    keep = distances <= radius
    return candidates[keep], distances[keep]


def match_many(
    probes: np.ndarray,
    gallery_vectors: np.ndarray,
    threshold: float,
    *,
    block_rows: int = 32_768,
) -> list[tuple[int, int, float]]:
    """All (probe_index, gallery_index, distance) pairs within ``threshold``.

    For matching the few faces of a new photo against many selfies. Sorted by probe index,
    then distance, then gallery index. The gallery is processed in blocks of ``block_rows``
    so memory stays bounded for large galleries.
    """
    queries = np.atleast_2d(np.asarray(probes, dtype=np.float32))
    dim = queries.shape[1] if queries.ndim == 2 else -1
    queries = _as_matrix(queries, dim, "probes")
    gallery = _as_matrix(gallery_vectors, dim, "gallery_vectors")
    if len(queries) == 0 or len(gallery) == 0:
        return []
    query_sq = np.einsum("ij,ij->i", queries, queries)
    results: list[tuple[int, int, float]] = []
    for start in range(0, len(gallery), block_rows):
        block = gallery[start : start + block_rows]
        block_sq = np.einsum("ij,ij->i", block, block)
        sq_dist = query_sq[:, None] + block_sq[None, :] - 2.0 * (queries @ block.T)
        scale = query_sq[:, None] + block_sq[None, :]
        rows, cols = np.nonzero(_screen(sq_dist, scale, threshold))
        if rows.size == 0:
            continue
        diff = queries[rows].astype(np.float64) - block[cols].astype(np.float64)
        distances = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        keep = distances <= threshold
        results.extend(
            zip(
                rows[keep].tolist(),
                (cols[keep] + start).tolist(),
                distances[keep].tolist(),
                strict=True,
            )
        )
    results.sort(key=lambda item: (item[0], item[2], item[1]))
    return results
