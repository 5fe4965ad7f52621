"""Matching quality you can rerun: per-guest precision and recall, and a threshold curve.

Two labelled sets, both run through the real pipeline (the configured engine, FACE_DETECTOR and
FACE_RECOGNIZER, for selfies and
photos, ``app.faces.matching`` for the search):

- ``devset``: ``tests/fixtures/devset``, a copy of ``../shared/faces/devset`` (or
  ``--devset DIR``): ``truth.json`` says who is in each photo. One photo where a person is
  alone is their selfie (the first by name); every other photo forms the event.
- ``degraded``: group composites (``tools.composites``) made from the devset's portraits: faces downscaled to
  40, 60 and 80 px on a 4000x3000 photo, faces turned by +/-15 degrees, dim photos, and JPEG
  quality 40. Each composite records who is where, so the detector's recall (faces found /
  faces placed) is measured too.

    .venv/bin/python -m benchmarks.match_quality [--threshold 1.0] [--sets devset degraded crowd speed]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from app.core.config import get_settings
from app.faces.engine import LocalDlibEngine, build_engine
from app.faces.matching import Gallery
from app.faces.providers import match_settings
from tools.composites import make_crowd, make_degraded
from tools.match_scoring import Indexed, detector_recall, index, load_devset, score, selfie_probes
from tools.paths import DEVSET

#: The curve and the grid are taken around the distances in use (each model has its scale).
STEPS = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)


def report(
    name: str, indexed: Indexed, probes: dict[str, np.ndarray], threshold: float, expand: float, guard: float
) -> None:
    total, per_guest = score(indexed, probes, threshold, expand, guard)
    photos = len(indexed.photo_people)
    print(
        f"\n== {name}: {photos} photos, {len(probes)} guests, detector recall "
        f"{detector_recall(indexed):.3f}, {1000 * indexed.cpu_seconds / photos:.0f} ms CPU per photo"
    )
    print(
        f"threshold {threshold}, expand {expand}, guard {guard}: "
        f"precision {total.precision:.3f} recall {total.recall:.3f}"
    )
    for person, guest in sorted(per_guest.items()):
        print(
            f"  {person:22s} P {guest.precision:.3f} R {guest.recall:.3f} "
            f"(tp {guest.tp} fp {guest.fp} fn {guest.fn})"
        )
    curve = ", ".join(
        f"{t:.2f}: {s.precision:.3f}/{s.recall:.3f}"
        for t in (round(threshold * f, 3) for f in STEPS)
        for s in [score(indexed, probes, t)[0]]
    )
    print(f"plain threshold curve (threshold: precision/recall): {curve}")
    grid = ", ".join(
        f"{ex:.2f}/{gd:.2f}: {s.precision:.3f}/{s.recall:.3f}"
        for ex in (round(expand * 0.9, 3), expand, round(expand * 1.1, 3))
        for gd in (round(guard * 0.95, 3), guard, round(guard * 1.05, 3))
        for s in [score(indexed, probes, threshold, ex, gd)[0]]
    )
    print(f"expansion at threshold {threshold} (expand/guard: precision/recall): {grid}")


def speed(threshold: float, expand: float, guard: float, size: int = 100_000, own: int = 200) -> None:
    """One selfie against an event of ``size`` faces, ``own`` of them the guest's, expansion
    included: the median of 50 searches."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(size, 128)).astype(np.float32)
    vectors *= 1.0 / np.linalg.norm(vectors, axis=1, keepdims=True)
    probe = vectors[0].copy()
    vectors[1 : own + 1] = probe + rng.normal(scale=0.045, size=(own, 128)).astype(np.float32)
    gallery = Gallery(capacity=size)
    gallery.append(np.arange(size), np.arange(size) // 3, vectors)
    timings = []
    for _ in range(50):
        started = time.perf_counter()
        found = gallery.match(probe, threshold=threshold, expand=expand, guard=guard)
        timings.append(time.perf_counter() - started)
    print(
        f"\n== speed: one selfie against {size} faces ({len(found)} photos found): "
        f"median {1000 * float(np.median(timings)):.1f} ms, max {1000 * max(timings):.1f} ms"
    )


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    defaults = get_settings()
    distances = match_settings(defaults)
    parser.add_argument("--threshold", type=float, default=distances.threshold)
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--expand", type=float, default=distances.expand)
    parser.add_argument("--guard", type=float, default=distances.guard)
    parser.add_argument("--detect-max-side", type=int, default=defaults.face_detect_max_side)
    parser.add_argument("--upsample", type=int, default=defaults.face_detect_upsample)
    parser.add_argument("--sets", nargs="+", default=["devset", "degraded", "crowd", "speed"])
    parser.add_argument("--degradations", nargs="+", help="only these degraded sets, e.g. 40px 60px 80px")
    args = parser.parse_args(list(argv) if argv is not None else None)
    engine = build_engine(
        detector=defaults.face_detector,
        recognizer=defaults.face_recognizer,
        detect_max_side=args.detect_max_side,
        upsample=args.upsample,
        photo_min_face_px=defaults.face_photo_min_px,
    )
    print(f"engine: {engine!r}")
    devset = load_devset(args.devset)
    probes = selfie_probes(engine, devset)
    if "devset" in args.sets:
        report("devset", index(engine, devset), probes, args.threshold, args.expand, args.guard)
    if "degraded" in args.sets:
        # The composites are cut with the default engine, so every detection setting sees the same photos.
        for label, labelled in make_degraded(LocalDlibEngine(), args.devset).items():
            if args.degradations and label not in args.degradations:
                continue
            report(
                f"degraded {label}", index(engine, labelled), probes, args.threshold, args.expand, args.guard
            )
    if "crowd" in args.sets:  # cut with the dlib engine, as benchmarks.engines does
        crowd = make_crowd(LocalDlibEngine(), args.devset)
        report("crowd", index(engine, crowd), probes, args.threshold, args.expand, args.guard)
    if "speed" in args.sets:
        speed(args.threshold, args.expand, args.guard)


if __name__ == "__main__":
    main()
