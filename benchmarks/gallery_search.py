"""Exact search against one ANN segment, by gallery size: the figures behind
``FACE_INDEX_SEGMENT_FACES`` (docs/SCALE.md).

For each size, synthetic faces around one identity per 37 faces (``tools.marathon_seed.draw``,
as in the marathon benchmark), and 200 selfies of those identities. Exact: the float32 search
every worker does over the faces after the last segment (``app.faces.matching.within``). ANN:
one segment written by ``app.faces.ann`` (usearch HNSW, float16), mapped, and searched as a
lookup does (``ann.near``, widening until beyond the radius), with its recall of the faces
within the radius against exact search, its build time and file size. No database.

    .venv/bin/python -m benchmarks.gallery_search [--sizes 25000,50000,100000,200000,400000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from app.faces import ann
from app.faces.matching import within
from tools.marathon_seed import draw

RADIUS = 1.0  # SFace's threshold and expansion radius: the widest a lookup asks for


def _percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 95):.2f}"


def measure(size: int, folder: Path, probes: int = 200) -> list[str]:
    rng = np.random.default_rng(size)
    identities = max(1, size // 37)
    centres = rng.standard_normal((identities, 128), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = draw(rng, centres, rng.integers(0, identities, size=size))
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    queries = draw(rng, centres, rng.integers(0, identities, size=probes))
    ids = np.arange(size, dtype=np.int64)

    exact_s, truth = [], []
    for q in queries:
        started = time.perf_counter()
        inside, _ = within(vectors, sq_norms, q, RADIUS)
        exact_s.append(time.perf_counter() - started)
        truth.append(set(inside.tolist()))

    started = time.perf_counter()
    segment = ann.write_segment(
        folder, f"{size}-0-bench", first=0, last=size, blocks=[(ids, vectors)], threads=1
    )
    build_s = time.perf_counter() - started
    assert segment is not None
    index = ann.view(segment)
    ann_s, hits = [], 0
    for q, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = ann.near(index, q, RADIUS)
        ann_s.append(time.perf_counter() - started)
        hits += len(expected & set(found.tolist()))
    recall = hits / max(1, sum(len(t) for t in truth))
    mb = segment.path.stat().st_size / 2**20
    return [
        f"{size:,}",
        _percentiles(exact_s),
        _percentiles(ann_s),
        f"{recall:.4f}",
        f"{build_s:.1f}",
        f"{mb:.0f}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="25000,50000,100000,200000,400000")
    args = parser.parse_args(argv)
    print(f"\n## Exact search and one ANN segment, by size ({os.cpu_count()} CPUs, one thread per search)\n")
    print("| faces | exact p50 / p95 ms | ANN p50 / p95 ms | ANN recall | build s (1 thread) | file MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            print("| " + " | ".join(measure(size, Path(folder))) + " |", flush=True)


if __name__ == "__main__":
    main()
