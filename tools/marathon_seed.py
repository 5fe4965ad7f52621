"""A marathon-sized event for ``benchmarks/marathon.py``, written in bulk on PostgreSQL (COPY
for photos and faces): no HTTP, and no face engine but for the planted real faces.

:func:`seed` makes an organizer, the marathon event and a small event beside it, ``runners``
runners (members of both, each with a ready selfie), and the marathon's photos: ``faces``
faces, ``per_photo`` to a photo, drawn around one synthetic identity per runner, with the
devset's real photos (described by the real engine) planted at random places among them. The
small event has ``small_faces`` faces of the same runners.

Synthetic descriptors imitate the default recognizer's (SFace, unit length, 128 values): a
face is its identity's centre plus gaussian noise of a scale drawn per face, normalised, so
two faces of one runner are 0.5-1.1 apart (most within the 1.0 threshold, a few only through
the expansion) and two runners about 1.41 (unrelated directions). Faces are numbered
(``faces.seq``) in the order they are written, as the photo job would have.

Import this module only once DATA_DIR / DATABASE_URL are set: the settings are read once.
"""

from __future__ import annotations

import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from app.accounts.models import Role, User
from app.core import security
from app.core.database import get_engine, session_scope, utcnow
from app.events.models import Event, EventMembership
from app.faces.matching import DESCRIPTOR_SIZE
from app.faces.models import EventGallery
from app.selfies.models import Selfie, SelfieStatus

PASSWORD = "seeded runners share this one"  # noqa: S105 - scratch accounts on a scratch database


@dataclass
class Planted:
    """A real devset photo among the synthetic ones: its photo id and its faces' ids."""

    name: str
    photo_id: int
    face_ids: list[int]


@dataclass
class Marathon:
    """What :func:`seed` made, and what the benchmark needs for exact search."""

    event_id: int
    small_event_id: int
    organizer_id: int
    runner_ids: list[int]
    face_ids: np.ndarray  # of the marathon, in seq order
    photo_ids: np.ndarray  # the photo of each
    vectors: np.ndarray  # their descriptors, float32
    runner_probes: np.ndarray  # each runner's selfie descriptor
    planted: list[Planted] = field(default_factory=list)


def save(marathon: Marathon, path: Path) -> None:
    """Keep what :func:`seed` made beside its database, for a later run (``load``)."""
    planted = json.dumps([[p.name, p.photo_id, p.face_ids] for p in marathon.planted])
    np.savez(
        path,
        ids=np.array([marathon.event_id, marathon.small_event_id, marathon.organizer_id]),
        runner_ids=np.array(marathon.runner_ids),
        face_ids=marathon.face_ids,
        photo_ids=marathon.photo_ids,
        vectors=marathon.vectors,
        runner_probes=marathon.runner_probes,
        planted=np.array(planted),
    )


def load(path: Path) -> Marathon:
    data = np.load(path)
    event_id, small_id, org_id = (int(x) for x in data["ids"])
    return Marathon(
        event_id=event_id,
        small_event_id=small_id,
        organizer_id=org_id,
        runner_ids=[int(x) for x in data["runner_ids"]],
        face_ids=data["face_ids"],
        photo_ids=data["photo_ids"],
        vectors=data["vectors"],
        runner_probes=data["runner_probes"],
        planted=[Planted(n, p, f) for n, p, f in json.loads(str(data["planted"]))],
    )


def draw(rng: np.random.Generator, centres: np.ndarray, who: np.ndarray) -> np.ndarray:
    """One descriptor per entry of ``who`` around its identity's centre."""
    scale = rng.uniform(0.04, 0.075, size=(len(who), 1)).astype(np.float32)
    out = centres[who] + rng.standard_normal((len(who), DESCRIPTOR_SIZE), dtype=np.float32) * scale
    normed: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
    return normed


def _ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    return [int(i) for i in session.scalars(stmt, rows).all()]


def _copy(table: str, columns: list[str], lines: list[str]) -> None:
    """COPY ``lines`` (CSV) into ``table`` on a raw psycopg2 connection, committed."""
    raw: Any = get_engine().raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)",
                io.StringIO("".join(lines)),
            )
        raw.commit()
    finally:
        raw.close()


def _people(session: Session, runners: int) -> tuple[int, int, int, list[int]]:
    now = utcnow()
    password_hash = security.hash_password(PASSWORD)
    (org_id,) = _ids(
        session,
        User,
        [
            {
                "username": "race_director",
                "email": "race@example.com",
                "password_hash": password_hash,
                "role": Role.organizer.value,
            }
        ],
    )
    event_id, small_id = _ids(
        session,
        Event,
        [
            {"code": code, "join_token": security.random_token(16)[:32], "name": name, "organizer_id": org_id}
            for code, name in (("MARATHON", "City marathon"), ("SMALLRUN", "Fun run"))
        ],
    )
    runner_ids = _ids(
        session,
        User,
        [
            {
                "username": f"runner{i:05d}",
                "email": f"runner{i:05d}@example.com",
                "password_hash": password_hash,
                "consent_at": now,
                "consent_version": "1",
            }
            for i in range(runners)
        ],
    )
    session.execute(
        insert(EventMembership),
        [{"user_id": u, "event_id": e} for u in runner_ids for e in (event_id, small_id)],
    )
    return org_id, event_id, small_id, runner_ids


def _photo_line(photo_id: int, event_id: int, org_id: int, faces: int) -> str:
    return (
        f"{photo_id},{event_id},{org_id},{photo_id}.jpg,photos/{event_id}/{photo_id}.jpg,JPEG,1,4000,3000,"
        f"served/{event_id}/{photo_id}.jpg,thumbs/{event_id}/{photo_id}.jpg,{faces},2026-12-06 08:00:00+00,"
        f"2026-12-06 08:00:00+00,indexed,0\n"
    )


PHOTO_COLUMNS = [
    "id",
    "event_id",
    "uploaded_by",
    "filename",
    "original_key",
    "original_format",
    "size_bytes",
    "width",
    "height",
    "served_key",
    "thumbnail_key",
    "faces_count",
    "created_at",
    "indexed_at",
    "status",
    "attempts",
]
FACE_COLUMNS = [
    "id",
    "photo_id",
    "event_id",
    '"left"',
    "top",
    '"right"',
    "bottom",
    "descriptor",
    "provider",
    "model",
    "seq",
]


def _face_line(face_id: int, photo_id: int, event_id: int, vector: np.ndarray, model: str, seq: int) -> str:
    blob = vector.astype("<f4").tobytes().hex()
    return f"{face_id},{photo_id},{event_id},0,0,8,8,\\x{blob},local,{model},{seq}\n"


def seed(
    *,
    faces: int,
    runners: int,
    per_photo: int,
    small_faces: int,
    model: str,
    devset: list[tuple[str, np.ndarray]],
    seed_value: int = 2026,
    progress: Any = print,
) -> Marathon:
    """Write everything; committed. ``devset``: the real photos' names and face descriptors
    (one array of shape (k, 128) per photo)."""
    rng = np.random.default_rng(seed_value)
    centres = rng.standard_normal((runners, DESCRIPTOR_SIZE), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    with session_scope() as session:
        org_id, event_id, small_id, runner_ids = _people(session, runners)
        probes = draw(rng, centres, np.arange(runners))
        now = utcnow()
        session.execute(
            insert(Selfie),
            [
                {
                    "user_id": u,
                    "image_key": f"selfies/{u}.jpg",
                    "descriptor": probes[i].astype("<f4").tobytes(),
                    "model": model,
                    "status": SelfieStatus.ready.value,
                    "checked_at": now,
                    "matched_at": now,
                }
                for i, u in enumerate(runner_ids)
            ],
        )
    progress(f"seed: {runners} runners with their selfies")

    photos = faces // per_photo
    plant_at = dict(
        zip(sorted(rng.choice(photos, size=len(devset), replace=False).tolist()), devset, strict=True)
    )
    who = rng.integers(0, runners, size=photos * per_photo)
    next_photo, next_face, seq = 1, 1, 0
    all_ids: list[np.ndarray] = []
    all_photos: list[np.ndarray] = []
    all_vectors: list[np.ndarray] = []
    planted: list[Planted] = []
    chunk = 10_000  # photos per COPY
    for start in range(0, photos, chunk):
        photo_lines, face_lines = [], []
        block = draw(rng, centres, who[start * per_photo : (start + chunk) * per_photo])
        for p in range(start, min(start + chunk, photos)):
            if p in plant_at:
                vectors = plant_at[p][1].astype(np.float32)
            else:
                vectors = block[(p - start) * per_photo : (p - start + 1) * per_photo]
            photo_lines.append(_photo_line(next_photo, event_id, org_id, len(vectors)))
            ids = np.arange(next_face, next_face + len(vectors), dtype=np.int64)
            for face_id, vector in zip(ids.tolist(), vectors, strict=True):
                seq += 1
                face_lines.append(_face_line(face_id, next_photo, event_id, vector, model, seq))
            if p in plant_at:
                planted.append(Planted(plant_at[p][0], next_photo, ids.tolist()))
            all_ids.append(ids)
            all_photos.append(np.full(len(ids), next_photo, dtype=np.int64))
            all_vectors.append(vectors)
            next_face += len(vectors)
            next_photo += 1
        _copy("photos", PHOTO_COLUMNS, photo_lines)
        _copy("faces", FACE_COLUMNS, face_lines)
        progress(f"seed: {next_face - 1:,} faces in {next_photo - 1:,} photos")

    small_who = rng.integers(0, runners, size=small_faces)
    small_vectors = draw(rng, centres, small_who)
    photo_lines, face_lines = [], []
    for p in range(0, small_faces, per_photo):
        photo_lines.append(_photo_line(next_photo, small_id, org_id, min(per_photo, small_faces - p)))
        for k, vector in enumerate(small_vectors[p : p + per_photo], start=p + 1):
            face_lines.append(_face_line(next_face, next_photo, small_id, vector, model, k))
            next_face += 1
        next_photo += 1
    _copy("photos", PHOTO_COLUMNS, photo_lines)
    _copy("faces", FACE_COLUMNS, face_lines)
    with session_scope() as session:
        session.execute(
            insert(EventGallery),
            [
                {"event_id": event_id, "seq": seq, "token": secrets.token_hex(8)},
                {"event_id": small_id, "seq": small_faces, "token": secrets.token_hex(8)},
            ],
        )
        # The ids were given: the sequences go past them.
        session.execute(
            text("SELECT setval(pg_get_serial_sequence('photos', 'id'), (SELECT max(id) FROM photos))")
        )
        session.execute(
            text("SELECT setval(pg_get_serial_sequence('faces', 'id'), (SELECT max(id) FROM faces))")
        )
        session.execute(text("ANALYZE"))
    return Marathon(
        event_id=event_id,
        small_event_id=small_id,
        organizer_id=org_id,
        runner_ids=runner_ids,
        face_ids=np.concatenate(all_ids),
        photo_ids=np.concatenate(all_photos),
        vectors=np.vstack(all_vectors),
        runner_probes=probes,
        planted=planted,
    )
