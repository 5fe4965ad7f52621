"""Hard photos made from the fixtures, with who is where: group composites degraded one way at
a time (small, turned or dim faces, low JPEG quality) and 12 MP crowd frames of guests and
strangers. Each face is cut from a real photo of the devset or of ``tests/fixtures/faces``."""

from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from app.faces.engine import LocalEngine
from tools.match_scoring import LabelledSet, Photo, load_devset
from tools.paths import FACES


def portraits(engine: LocalEngine, folder: Path) -> dict[str, list[Image.Image]]:
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
    crops = portraits(engine, folder)
    people = sorted(p for p in crops if p in devset.selfies)
    variants: dict[str, dict[str, float]] = {
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
            canvas.save(out, "JPEG", quality=int(spec.get("quality", 90)))
            photos.append(Photo(f"{label}-{index}.jpg", chosen, out.getvalue()))
        sets[label] = LabelledSet(label, devset.selfies, photos)
    return sets


def _stranger_crops(engine: LocalEngine) -> list[Image.Image]:
    """Faces of people who are no guest: the six of t1.jpg and Tom Hanks (1.8x their box)."""
    out = []
    for name in ("t1.jpg", "Tom_Hanks_54745.png"):
        img = Image.open(FACES / name).convert("RGB")
        for face in engine.index_photo((FACES / name).read_bytes()):
            box = face.box
            cx, cy, half = (box.left + box.right) / 2, (box.top + box.bottom) / 2, 0.9 * box.width
            out.append(img.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half))))
    return out


def background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
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
    crops = {p: c for p, c in portraits(engine, folder).items() if p in devset.selfies}
    strangers = _stranger_crops(engine)
    photos = []
    for index in range(frames):
        canvas = background(rng, (4000, 3000))
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
