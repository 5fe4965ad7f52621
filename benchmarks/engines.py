"""The local engines side by side, in one run: CPU per selfie, per 12 MP crowd photo and per
face, recall by face size, and matching quality on the devset and on crowd composites.

    .venv/bin/python -m benchmarks.engines [--engines yunet+sface hog+dlib plain-dlib] [--frames 30]

Engines: ``yunet+sface`` (the default), ``yunet+dlib`` (dlib's ResNet on YuNet's boxes),
``hog+dlib`` (the previous default: HOG at 4096 px, ResNet), ``plain-dlib`` (what a developer
would write with dlib: HOG upsampled once on the original, tolerance 0.6, no expansion). Each
runs on one core (OpenCV single-threaded); CPU is ``time.process_time``. Matching uses each
recognizer's defaults (``app.faces.recognizers``). The crowd composites are
``tools.composites.make_crowd``: 12 MP frames of 6-14 people (guests from the devset
and strangers), faces 40-110 px, turned up to 15 degrees, a third dim, a third at JPEG
quality 35. docs/FACES.md quotes this output.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from collections.abc import Iterable

from PIL import Image

from app.faces.engine import LocalDlibEngine, LocalEngine, build_engine
from app.faces.images import load_rgb, make_thumbnail, served_jpeg
from app.faces.recognizers import MatchDefaults
from tools.composites import background, make_crowd, portraits
from tools.match_scoring import LabelledSet, Photo, detector_recall, index, load_devset, score, selfie_probes
from tools.paths import DEVSET

SIZES = (30, 36, 40, 60, 80, 110)


def engines(names: Iterable[str]) -> dict[str, tuple[LocalEngine, MatchDefaults]]:
    out: dict[str, tuple[LocalEngine, MatchDefaults]] = {}
    for name in names:
        if name == "plain-dlib":
            engine: LocalEngine = LocalDlibEngine(detect_max_side=100_000, upsample=1)
            out[name] = (engine, MatchDefaults(threshold=0.6, expand=0.0, guard=0.0))
            continue
        detector, recognizer = name.split("+")
        engine = build_engine(detector=detector, recognizer=recognizer)
        out[name] = (engine, engine.recognizer.defaults)
    for engine, _ in out.values():
        engine.load_models()
    return out


def selfie_cpu(engine: LocalEngine, data: bytes, *, strict: bool) -> float:
    started = time.process_time()
    engine.analyze_selfie(data, strict=strict)
    return time.process_time() - started


def phone_selfie() -> bytes:
    """A phone selfie as the web page sends it (downscaled to 1600 px): 1600x900 JPEG."""
    face = Image.open(DEVSET / "obama_1080p.jpg").convert("RGB")
    canvas = face.resize((1600, 900), Image.Resampling.LANCZOS).crop((0, 0, 1600, 900))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88)
    return out.getvalue()


def sized_set(engine: LocalEngine, face_px: int, frames: int = 4, seed: int = 5) -> LabelledSet:
    """12 MP frames with six guests' faces of exactly ``face_px``."""
    rng = random.Random(seed + face_px)
    devset = load_devset(DEVSET)
    crops = {p: c for p, c in portraits(engine, DEVSET).items() if p in devset.selfies}
    photos = []
    for i in range(frames):
        canvas = background(rng, (4000, 3000))
        people = [rng.choice(sorted(crops)) for _ in range(6)]
        for slot, person in enumerate(people):
            side = round(face_px * 1.8)
            face = rng.choice(crops[person]).resize((side, side), Image.Resampling.LANCZOS)
            canvas.paste(face, (300 + slot * 600 + rng.randint(0, 200), 700 + rng.randint(0, 1500)))
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=88)
        photos.append(Photo(f"{face_px}px-{i}.jpg", people, out.getvalue()))
    return LabelledSet(f"{face_px}px", devset.selfies, photos)


def photo_job_cpu(engine: LocalEngine, data: bytes) -> float:
    """The photo job's CPU for one photo: decode once, faces, thumbnail, served copy."""
    started = time.process_time()
    img = load_rgb(data, max_pixels=engine.max_pixels)
    engine.index_image(img)
    make_thumbnail(img)
    served_jpeg(img)
    return time.process_time() - started


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--engines", nargs="+", default=["yunet+sface", "yunet+dlib", "hog+dlib", "plain-dlib"]
    )
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args(list(argv) if argv is not None else None)
    reference = LocalDlibEngine()  # cuts the portraits, so every engine sees the same frames
    crowd = make_crowd(reference, DEVSET, frames=args.frames)
    devset = load_devset(DEVSET)
    sized = {px: sized_set(reference, px) for px in SIZES}
    selfie = phone_selfie()
    print(f"crowd: {len(crowd.photos)} frames of 4000x3000, {sum(len(p.people) for p in crowd.photos)} faces")
    for name, (engine, distances) in engines(args.engines).items():
        print(f"\n== {name}: {engine!r}, distances {distances}")
        phone = [selfie_cpu(engine, selfie, strict=True) for _ in range(10)]
        devset_cpu = [selfie_cpu(engine, data, strict=False) for data in devset.selfies.values()]
        print(
            f"selfie CPU: phone 1600x900 median {1000 * statistics.median(phone):.0f} ms; "
            f"devset selfies median {1000 * statistics.median(devset_cpu):.0f} ms"
        )
        indexed = index(engine, crowd)
        faces = sum(indexed.faces_found.values())
        per_photo = indexed.cpu_seconds / len(crowd.photos)
        job = statistics.median(photo_job_cpu(engine, p.data) for p in crowd.photos[:5])
        print(
            f"crowd 12 MP: engine {1000 * per_photo:.0f} ms CPU per photo, "
            f"{1000 * indexed.cpu_seconds / max(1, faces):.0f} ms per face found; "
            f"photo job (thumbnail and served copy included) median {1000 * job:.0f} ms; "
            f"detector recall {detector_recall(indexed):.3f}"
        )
        probes = selfie_probes(engine, devset)
        for label, labelled in (("devset", devset), ("crowd", crowd)):
            ix = indexed if label == "crowd" else index(engine, labelled)
            total, _ = score(ix, probes, distances.threshold, distances.expand, distances.guard)
            print(
                f"{label}: precision {total.precision:.3f} recall {total.recall:.3f} "
                f"(tp {total.tp} fp {total.fp} fn {total.fn})"
            )
        by_size = []
        for px, labelled in sized.items():
            ix = index(engine, labelled)
            total, _ = score(ix, probes, distances.threshold, distances.expand, distances.guard)
            by_size.append(f"{px} px: found {detector_recall(ix):.2f} matched {total.recall:.2f}")
        print("by face size (6 faces per 12 MP frame): " + "; ".join(by_size))


if __name__ == "__main__":
    main()
