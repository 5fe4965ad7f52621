"""Face matching scored on labelled photos: a labelled set (who is in each photo, and each
guest's selfie), an event's gallery indexed from it by a local engine, and per-guest precision
and recall of the matches. The devset (``tests/fixtures/devset``) is one such set."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.faces.engine import LocalEngine
from app.faces.matching import Gallery
from app.faces.providers.base import DetectedFace


@dataclass
class Photo:
    """A photo of an event and who is in it (``unknown`` for people who are no guest)."""

    name: str
    people: list[str]
    data: bytes


@dataclass
class LabelledSet:
    """The selfie of each guest, and the event's photos."""

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


def vector(face: DetectedFace) -> np.ndarray:
    """The descriptor of a face a local engine found (a remote provider's faces have none)."""
    if face.descriptor is None:
        raise ValueError(f"the face at {face.box} has no descriptor: not from a local engine")
    return face.descriptor


def load_devset(folder: Path) -> LabelledSet:
    """A devset folder as a labelled set: the first photo where a person is alone is their
    selfie; every other photo is the event's."""
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
            gallery.append(ids, np.full(len(faces), photo_id), np.stack([vector(f) for f in faces]))
    return indexed


def selfie_probes(engine: LocalEngine, labelled: LabelledSet) -> dict[str, np.ndarray]:
    return {
        person: vector(engine.analyze_selfie(data, strict=False).face)
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
