"""A large event for the notification fan-out benchmark (``benchmarks/notify_fanout.py``),
written with bulk inserts on the configured database: no HTTP, no face engine.

:func:`seed` makes an organizer, one event, ``guests`` verified guests (distinct emails, one
password hash computed once and shared) with their memberships and a ready selfie each, and
``photos`` indexed photos with one face per guest it shows; each guest is in ``per_guest``
consecutive photos. :func:`match_batch` then does, photo by photo, what the photo job's
matching step does in its transaction: store the photo's matches and call
``app.notices.service.photos_matched`` for its guests, committed. The matches are not seeded
beforehand on purpose: a guest's first notice counts only the photos matched from then on, so
matches already there before the first call would be taken as seen.

Import this module only once DATA_DIR / DATABASE_URL and the NOTIFY_* variables are set: the
settings are read once per process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.accounts.models import Role, User
from app.core import security
from app.core.config import get_settings
from app.core.database import session_scope, utcnow
from app.events.models import Event, EventMembership
from app.faces.models import Face, FaceMatch
from app.faces.recognizers import model_of
from app.notices.models import GuestNotice
from app.notices.service import photos_matched
from app.photos.models import Photo, PhotoStatus
from app.selfies.models import Selfie, SelfieStatus

PASSWORD = "seeded guests share this one"  # noqa: S105 - scratch accounts on a scratch database
DESCRIPTOR = bytes(512)  # 128 float32: the local provider's size


@dataclass(frozen=True)
class Match:
    user_id: int
    selfie_id: int
    face_id: int


@dataclass
class Seeded:
    """What :func:`seed` made: the event, each guest's email, and each photo's guests."""

    event_id: int
    emails: dict[int, str] = field(default_factory=dict)  # user id -> address
    photo_matches: dict[int, list[Match]] = field(default_factory=dict)  # photo id -> its guests


def _ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in bulk; their ids, in the order of ``rows``."""
    stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
    return [int(i) for i in session.scalars(stmt, rows).all()]


def guest_photos(guest: int, photos: int, per_guest: int) -> list[int]:
    """The indexes of the photos guest number ``guest`` is in: ``per_guest`` consecutive ones."""
    return [(guest * per_guest + k) % photos for k in range(per_guest)]


def seed(*, guests: int, photos: int, per_guest: int) -> Seeded:
    """Write the event, its guests, their selfies and the photos with their faces; committed."""
    if not 1 <= per_guest <= photos:
        raise ValueError("--per-guest must be between 1 and --photos")
    model = model_of(get_settings().face_recognizer)
    password_hash = security.hash_password(PASSWORD)
    now = utcnow()
    with session_scope() as session:
        (org_id,) = _ids(
            session,
            User,
            [
                {
                    "username": "notify_boss",
                    "email": "notify_boss@example.com",
                    "password_hash": password_hash,
                    "role": Role.organizer.value,
                    "email_verified_at": now,
                }
            ],
        )
        (event_id,) = _ids(
            session,
            Event,
            [
                {
                    "code": "NOTIFYBENCH",
                    "join_token": security.random_token(16)[:32],
                    "name": "Fan-out bench",
                    "organizer_id": org_id,
                }
            ],
        )
        guest_rows = [
            {
                "username": f"guest{i:05d}",
                "email": f"guest{i:05d}@example.com",
                "password_hash": password_hash,
                "email_verified_at": now,
                "consent_at": now,
                "consent_version": "1",
                "language": "en" if i % 2 else "fr",
            }
            for i in range(guests)
        ]
        user_ids = _ids(session, User, guest_rows)
        session.execute(insert(EventMembership), [{"user_id": uid, "event_id": event_id} for uid in user_ids])
        selfie_ids = _ids(
            session,
            Selfie,
            [
                {
                    "user_id": uid,
                    "image_key": f"selfies/{uid}.jpg",
                    "descriptor": DESCRIPTOR,
                    "model": model,
                    "status": SelfieStatus.ready.value,
                    "checked_at": now,
                    "matched_at": now,
                }
                for uid in user_ids
            ],
        )
        in_photo: list[list[int]] = [[] for _ in range(photos)]
        for g in range(guests):
            for p in guest_photos(g, photos, per_guest):
                in_photo[p].append(g)
        photo_ids = _ids(
            session,
            Photo,
            [
                {
                    "event_id": event_id,
                    "uploaded_by": org_id,
                    "filename": f"{p}.jpg",
                    "original_key": f"photos/{event_id}/{p}.jpg",
                    "thumbnail_key": f"thumbs/{event_id}/{p}.jpg",
                    "served_key": f"served/{event_id}/{p}.jpg",
                    "original_format": "JPEG",
                    "size_bytes": 1,
                    "width": 4000,
                    "height": 3000,
                    "faces_count": len(in_photo[p]),
                    "status": PhotoStatus.indexed.value,
                    "indexed_at": now,
                }
                for p in range(photos)
            ],
        )
        seeded = Seeded(
            event_id=event_id,
            emails={uid: str(r["email"]) for uid, r in zip(user_ids, guest_rows, strict=True)},
        )
        for p, photo_id in enumerate(photo_ids):
            face_ids = _ids(
                session,
                Face,
                [
                    {
                        "photo_id": photo_id,
                        "event_id": event_id,
                        "left": 10 * k,
                        "top": 0,
                        "right": 10 * k + 8,
                        "bottom": 8,
                        "descriptor": DESCRIPTOR,
                        "model": model,
                    }
                    for k in range(len(in_photo[p]))
                ],
            )
            seeded.photo_matches[photo_id] = [
                Match(user_id=user_ids[g], selfie_id=selfie_ids[g], face_id=f)
                for g, f in zip(in_photo[p], face_ids, strict=True)
            ]
    return seeded


def match_batch(seeded: Seeded) -> float:
    """Each photo's matches and ``photos_matched``, one committed transaction per photo (as the
    photo job's matching step); the seconds it took."""
    started = time.perf_counter()
    for photo_id, matches in seeded.photo_matches.items():
        with session_scope() as session:
            session.execute(
                insert(FaceMatch),
                [
                    {
                        "selfie_id": m.selfie_id,
                        "user_id": m.user_id,
                        "event_id": seeded.event_id,
                        "photo_id": photo_id,
                        "face_id": m.face_id,
                        "distance": 0.3,
                    }
                    for m in matches
                ],
            )
            photos_matched(
                session=session,
                event_id=seeded.event_id,
                photo_id=photo_id,
                user_ids=[m.user_id for m in matches],
            )
    return time.perf_counter() - started


def settled_at(event_id: int) -> tuple[datetime, int]:
    """When the batch settles (the last notice of the event due) and how many notices wait."""
    with session_scope() as session:
        last, waiting = session.execute(
            select(func.max(GuestNotice.due_at), func.count()).where(
                GuestNotice.event_id == event_id, GuestNotice.due_at.is_not(None)
            )
        ).one()
    if last is None:
        raise RuntimeError("no notice is waiting after the batch")
    return last, int(waiting)
