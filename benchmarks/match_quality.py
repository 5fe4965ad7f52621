"""Matching quality you can rerun: per-guest precision and recall, and a threshold curve.

Two labelled sets, both run through the real pipeline (the configured engine, FACE_DETECTOR and
FACE_RECOGNIZER, for selfies and
photos, ``app.faces.matching`` for the search):

- ``devset``: ``tests/fixtures/devset``, a copy of ``../shared/faces/devset`` (or
  ``--devset DIR``): ``truth.json`` says who is in each photo. One photo where a person is
  alone is their selfie (the first by name); every other photo forms the event.
- ``degraded``: group composites made here from the devset's portraits: faces downscaled to
  40, 60 and 80 px on a 4000x3000 photo, faces turned by +/-15 degrees, dim photos, and JPEG
  quality 40. Each composite records who is where, so the detector's recall (faces found /
  faces placed) is measured too.

    .venv/bin/python -m benchmarks.match_quality [--threshold 1.0] [--sets devset degraded crowd speed]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from app.core.config import get_settings
from app.faces.engine import LocalDlibEngine, LocalEngine, build_engine
from app.faces.matching import Gallery
from app.faces.providers import match_settings

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT / "tests" / "fixtures" / "devset"  # a copy of ../shared/faces/devset
#: The curve and the grid are taken around the distances in use (each model has its scale).
STEPS = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)


@dataclass
class Photo:
    name: str
    people: list[str]
    data: bytes


@dataclass
class LabelledSet:
    name: str
    selfies: dict[str, bytes]
    photos: list[Photo]


@dataclass
class Indexed:
    """An event's gallery with, per photo, its faces and the CPU its indexing took."""

    gallery: Gallery
    photo_people: dict[int, set[str]]
    faces_found: dict[int, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0


def load_devset(folder: Path) -> LabelledSet:
    truth = json.loads((folder / "truth.json").read_text())["photos"]
    selfies: dict[str, bytes] = {}
    photos = []
    for name in sorted(truth):
        people = truth[name]
        data = (folder / name).read_bytes()
        if len(people) == 1 and people[0] != "unknown" and people[0] not in selfies:
            selfies[people[0]] = data
            continue
        photos.append(Photo(name, people, data))
    return LabelledSet("devset", selfies, photos)


def _portraits(engine: LocalEngine, folder: Path) -> dict[str, list[Image.Image]]:
    """Each person's face crops (1.8x the detected box) from the devset's single-person photos,
    except the one used as their selfie."""
    truth = json.loads((folder / "truth.json").read_text())["photos"]
    crops: dict[str, list[Image.Image]] = defaultdict(list)
    seen: set[str] = set()
    for name in sorted(truth):
        people = truth[name]
        if len(people) != 1 or people[0] == "unknown":
            continue
        if people[0] not in seen:  # the selfie stays out of the event
            seen.add(people[0])
            continue
        img = Image.open(folder / name).convert("RGB")
        faces = engine.index_photo((folder / name).read_bytes())
        if len(faces) != 1:
            continue
        box = faces[0].box
        cx, cy, half = (box.left + box.right) / 2, (box.top + box.bottom) / 2, 0.9 * box.width
        crops[people[0]].append(img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))))
    return crops


def make_degraded(engine: LocalEngine, folder: Path, seed: int = 7) -> dict[str, LabelledSet]:
    """Group composites per degradation: 4000x3000 photos of 4 to 6 faces."""
    rng = random.Random(seed)
    devset = load_devset(folder)
    crops = _portraits(engine, folder)
    people = sorted(p for p in crops if p in devset.selfies)
    variants = {
        "40px": {"face": 40},
        "60px": {"face": 60},
        "80px": {"face": 80},
        "turned15": {"face": 160, "turn": 15},
        "dim": {"face": 160, "dim": 0.35},
        "jpeg40": {"face": 160, "quality": 40},
    }
    sets = {}
    for label, spec in variants.items():
        photos = []
        for index in range(12):
            chosen = rng.sample(people, k=min(len(people), rng.randint(4, 6)))
            canvas = Image.new("RGB", (4000, 3000), (rng.randint(90, 160),) * 3)
            for slot, person in enumerate(chosen):
                crop = rng.choice(crops[person])
                # The crop is 1.8x the face box: scale it so the face is spec["face"] px wide.
                side = round(spec["face"] * 1.8)
                face = crop.resize((side, side), Image.Resampling.LANCZOS)
                if "turn" in spec:
                    face = face.rotate(rng.choice((-1, 1)) * spec["turn"], expand=False, fillcolor=(128,) * 3)
                x = 300 + slot * 600 + rng.randint(0, 200)
                y = 600 + rng.randint(0, 1500)
                canvas.paste(face, (x, y))
            if "dim" in spec:
                canvas = ImageEnhance.Brightness(canvas).enhance(spec["dim"])
            out = io.BytesIO()
            canvas.save(out, "JPEG", quality=spec.get("quality", 90))
            photos.append(Photo(f"{label}-{index}.jpg", chosen, out.getvalue()))
        sets[label] = LabelledSet(label, devset.selfies, photos)
    return sets


def _stranger_crops(engine: LocalEngine) -> list[Image.Image]:
    """Faces of people who are no guest: the six of t1.jpg and Tom Hanks (1.8x their box)."""
    folder = ROOT / "tests" / "fixtures" / "faces"
    out = []
    for name in ("t1.jpg", "Tom_Hanks_54745.png"):
        img = Image.open(folder / name).convert("RGB")
        for face in engine.index_photo((folder / name).read_bytes()):
            box = face.box
            cx, cy, half = (box.left + box.right) / 2, (box.top + box.bottom) / 2, 0.9 * box.width
            out.append(img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))))
    return out


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A textured backdrop (smooth colour blotches and grain), so the frames compress and
    decode like photos rather than flat grey."""
    nprng = np.random.default_rng(rng.randint(0, 1 << 30))
    blotches = Image.fromarray(nprng.integers(40, 200, (30, 40, 3), dtype=np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )
    grain = nprng.integers(-10, 10, (size[1], size[0], 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(blotches, dtype=np.int16) + grain, 0, 255).astype(np.uint8))


def make_crowd(engine: LocalEngine, folder: Path, frames: int = 30, seed: int = 11) -> LabelledSet:
    """Crowd frames of 12 MP (4000x3000): 6-14 people each, guests and strangers, faces 40-110
    px wide, a third of the frames dim, faces turned by up to 15 degrees, a third saved at JPEG
    quality 35."""
    rng = random.Random(seed)
    devset = load_devset(folder)
    crops = {p: c for p, c in _portraits(engine, folder).items() if p in devset.selfies}
    strangers = _stranger_crops(engine)
    photos = []
    for index in range(frames):
        canvas = _background(rng, (4000, 3000))
        count = rng.randint(6, 14)
        guests = rng.sample(sorted(crops), k=min(len(crops), rng.randint(2, 5)))
        people = guests + ["stranger"] * (count - len(guests))
        rng.shuffle(people)
        columns = 7
        for slot, person in enumerate(people):
            crop = rng.choice(crops[person] if person != "stranger" else strangers)
            side = round(rng.randint(40, 110) * 1.8)
            face = crop.resize((side, side), Image.Resampling.LANCZOS)
            face = face.rotate(rng.uniform(-15, 15), expand=False, fillcolor=(128, 128, 128))
            x = 150 + (slot % columns) * 540 + rng.randint(0, 250)
            y = 300 + (slot // columns) * 1200 + rng.randint(0, 700)
            canvas.paste(face, (x, y))
        if index % 3 == 1:
            canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.3, 0.5))
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=35 if index % 3 == 2 else 85)
        photos.append(Photo(f"crowd-{index}.jpg", people, out.getvalue()))
    return LabelledSet("crowd", devset.selfies, photos)


def index(engine: LocalEngine, labelled: LabelledSet) -> Indexed:
    gallery = Gallery()
    indexed = Indexed(gallery, {})
    next_face = 1
    for photo_id, photo in enumerate(labelled.photos, start=1):
        started = time.process_time()
        faces = engine.index_photo(photo.data)
        indexed.cpu_seconds += time.process_time() - started
        indexed.photo_people[photo_id] = {p for p in photo.people if p != "unknown"}
        indexed.faces_found[photo_id] = len(faces)
        if faces:
            ids = np.arange(next_face, next_face + len(faces))
            next_face += len(faces)
            gallery.append(ids, np.full(len(faces), photo_id), np.stack([f.descriptor for f in faces]))
    return indexed


def selfie_probes(engine: LocalEngine, labelled: LabelledSet) -> dict[str, np.ndarray]:
    return {
        person: engine.analyze_selfie(data, strict=False).face.descriptor  # type: ignore[misc]
        for person, data in labelled.selfies.items()
    }


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(
    indexed: Indexed, probes: dict[str, np.ndarray], threshold: float, expand: float = 0.0, guard: float = 0.0
) -> tuple[Score, dict[str, Score]]:
    total, per_guest = Score(), {}
    for person, probe in probes.items():
        matches = indexed.gallery.match(probe, threshold=threshold, expand=expand, guard=guard)
        found = {photo for _face, photo, _d in matches}
        truth = {photo for photo, people in indexed.photo_people.items() if person in people}
        guest = Score(len(found & truth), len(found - truth), len(truth - found))
        per_guest[person] = guest
        total.tp, total.fp, total.fn = total.tp + guest.tp, total.fp + guest.fp, total.fn + guest.fn
    return total, per_guest


def detector_recall(indexed: Indexed) -> float:
    placed = sum(len(p) for p in indexed.photo_people.values())
    found = sum(min(indexed.faces_found[i], len(p)) for i, p in indexed.photo_people.items())
    return found / placed if placed else 1.0


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
