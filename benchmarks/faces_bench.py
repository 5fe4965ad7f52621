"""Benchmark and calibration of the dlib engine (``FACE_DETECTOR=hog FACE_RECOGNIZER=dlib``,
the fallback) on the real fixtures; the engines side by side are ``benchmarks/engines.py``.

Run from the repository root: ``.venv/bin/python benchmarks/faces_bench.py``.

Prints: the detection sweep used to pick ``detect_max_side`` and ``upsample``; CPU time per
selfie, per event photo and per photo face; selfies per second with two worker processes;
matching time against 10k and 100k synthetic descriptors; and precision/recall of person A's
selfie against a gallery built from the fixture photos.
"""

from __future__ import annotations

import io
import multiprocessing
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from app.faces.detectors import _hog_detector
from app.faces.engine import LocalDlibEngine
from app.faces.images import downscale, load_rgb
from app.faces.matching import Gallery
from app.faces.providers.base import SelfieRejected

REPO = Path(__file__).resolve().parents[1]

FIXTURES = REPO / "tests" / "fixtures" / "faces"
T = TypeVar("T")
PERSON_A = {
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
}
SELFIES = [*sorted(PERSON_A), "biden.jpg", "Tom_Hanks_54745.png"]
PHOTOS = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".jpg", ".png"))
SIDES = [640, 800, 1024, 1280, 1600, 2048, 2560]
# Composite: (fixture, scale, position); face widths in the 4000x3000 canvas are ~90-150 px.
COMPOSITE = [
    ("t1.jpg", 1.0, (100, 100)),  # six faces of ~105 px
    ("obama.jpg", 0.34, (1700, 300)),  # ~90 px
    ("obama2.jpg", 0.45, (2200, 300)),  # ~120 px
    ("biden.jpg", 0.40, (2700, 200)),  # ~130 px
    ("obama3.jpg", 0.53, (3200, 300)),  # ~150 px
]
COMPOSITE_FACES = 10


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def composite_jpeg() -> bytes:
    canvas = Image.new("RGB", (4000, 3000), (120, 130, 140))
    for name, scale, position in COMPOSITE:
        with Image.open(FIXTURES / name) as img:
            rgb = img.convert("RGB")
        canvas.paste(rgb.resize((round(rgb.width * scale), round(rgb.height * scale))), position)
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def phone_size_selfie() -> bytes:
    with Image.open(FIXTURES / "obama3.jpg") as img:
        big = img.convert("RGB").resize((3024, 4032), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def cpu_ms(func: Callable[[], T], repeat: int = 1) -> tuple[float, T]:
    """Median CPU milliseconds of ``func`` over ``repeat`` runs, and its last result."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        result = func()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times), result


def detection_sweep(engine: LocalDlibEngine, composite: bytes) -> None:
    print("== Detection sweep: dlib HOG on the downscaled image, faces found / CPU ms")
    detector = _hog_detector()
    images = {
        "t1.jpg 1280x886 (6 faces)": load_rgb(read("t1.jpg"), max_pixels=engine.max_pixels),
        f"composite 4000x3000 ({COMPOSITE_FACES} faces)": load_rgb(composite, max_pixels=engine.max_pixels),
    }
    for label, img in images.items():
        print(f"  {label}")
        for side in SIDES:
            small, _ = downscale(img, max_side=side)
            pixels = np.asarray(small)
            cells = []
            for upsample in (0, 1):
                ms, found = cpu_ms(partial(detector, pixels, upsample))
                cells.append(f"up{upsample}: {len(found):2d} faces {ms:6.0f} ms")
            print(f"    side {side:5d}   " + "   ".join(cells))


def per_image_costs(engine: LocalDlibEngine, composite: bytes) -> None:
    print("== Selfies: analyze_selfie(strict=True), CPU ms (decode + checks + descriptor)")
    selfie_ms = []
    for name in SELFIES:
        data = read(name)
        ms, _ = cpu_ms(partial(engine.analyze_selfie, data, strict=True), repeat=3)
        selfie_ms.append(ms)
        print(f"  {name:26s} {ms:6.0f} ms")
    print(f"  median per selfie: {statistics.median(selfie_ms):.0f} ms")
    phone = phone_size_selfie()
    ms, _ = cpu_ms(lambda: engine.analyze_selfie(phone, strict=True), repeat=3)
    print(f"  12 MP phone-size selfie (obama3.jpg upscaled to 3024x4032): {ms:.0f} ms")

    print("== Event photos: index_photo, CPU ms")
    photo_ms, total_faces = [], 0
    for name, data in [(n, read(n)) for n in PHOTOS] + [("composite 4000x3000", composite)]:
        ms, faces = cpu_ms(partial(engine.index_photo, data), repeat=2)
        photo_ms.append(ms)
        total_faces += len(faces)
        print(f"  {name:26s} {ms:6.0f} ms  {len(faces):2d} faces")
    print(
        f"  median per photo: {statistics.median(photo_ms):.0f} ms; "
        f"per photo face (total CPU / faces): {sum(photo_ms) / max(total_faces, 1):.0f} ms"
    )


_worker_engine: LocalDlibEngine | None = None


def _init_worker() -> None:
    global _worker_engine
    _worker_engine = LocalDlibEngine()
    _worker_engine.load_models()


def _analyze_in_worker(data: bytes) -> int:
    assert _worker_engine is not None
    try:
        return _worker_engine.analyze_selfie(data, strict=True).faces_found
    except SelfieRejected:
        return 0


def throughput(processes: int = 2, rounds: int = 4) -> None:
    print(f"== Throughput: strict selfies with {processes} processes (models loaded once each)")
    jobs = [read(name) for name in SELFIES] * rounds
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init_worker) as pool:
        pool.map(_analyze_in_worker, jobs[:processes])  # warm up both workers
        start = time.perf_counter()
        pool.map(_analyze_in_worker, jobs, chunksize=1)
        elapsed = time.perf_counter() - start
    print(f"  {len(jobs)} selfies in {elapsed:.2f} s: {len(jobs) / elapsed:.1f} selfies/s")


def matching_speed() -> None:
    print("== Matching one probe (Gallery.match, threshold 0.6), median of 20 runs")
    rng = np.random.default_rng(7)
    for size in (10_000, 100_000):
        vectors = rng.normal(size=(size, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        gallery = Gallery()
        gallery.append(np.arange(size), np.arange(size) // 4, vectors)
        probe = vectors[123] + rng.normal(scale=0.03, size=128).astype(np.float32)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            gallery.match(probe, threshold=0.6)
            times.append((time.perf_counter() - start) * 1000)
        print(f"  {size:7d} descriptors: {statistics.median(times):6.2f} ms")


def precision_recall(engine: LocalDlibEngine, composite: bytes) -> None:
    print("== obama.jpg selfie against every face of the other fixture photos + composite")
    probe = engine.analyze_selfie(read("obama.jpg"), strict=True).face.descriptor
    labels: list[tuple[str, bool]] = []
    vectors: list[np.ndarray] = []
    sources = [(n, read(n)) for n in PHOTOS if n != "obama.jpg"] + [("composite", composite)]
    for name, data in sources:
        faces = engine.index_photo(data)
        for face in faces:
            assert face.descriptor is not None  # the local engine describes every face
            vectors.append(face.descriptor)
            if name == "composite":
                # Only faces pasted from person A photos (right of t1.jpg) are person A.
                is_a = 1700 <= face.box.left < 2700 or face.box.left >= 3200
            else:
                is_a = name in PERSON_A
            labels.append((f"{name}@{face.box.left},{face.box.top}", is_a))
    distances = np.linalg.norm(np.stack(vectors) - probe, axis=1)
    positives = sum(is_a for _, is_a in labels)
    print(f"  gallery: {len(labels)} faces, {positives} of them person A")
    for threshold in (0.5, 0.6):
        hit = distances <= threshold
        true_pos = sum(1 for h, (_, a) in zip(hit, labels, strict=True) if h and a)
        precision = true_pos / max(int(hit.sum()), 1)
        recall = true_pos / max(positives, 1)
        print(f"  threshold {threshold}: precision {precision:.2f}, recall {recall:.2f}")
    print("  distances (A = person A):")
    for index in np.argsort(distances):
        label, is_a = labels[index]
        print(f"    {distances[index]:.3f} {'A' if is_a else '-'} {label}")


def main() -> None:
    engine = LocalDlibEngine()
    print(engine)
    start = time.process_time()
    engine.load_models()
    print(f"model load: {(time.process_time() - start) * 1000:.0f} ms CPU")
    composite = composite_jpeg()
    detection_sweep(engine, composite)
    per_image_costs(engine, composite)
    throughput()
    matching_speed()
    precision_recall(engine, composite)


if __name__ == "__main__":
    main()
