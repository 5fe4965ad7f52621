"""Storing faces and computing matches. The face and face-match queries live here, except
those of searching an event's faces near a selfie (``app.faces.search``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from app.core.database import upsert_insert
from app.faces import search
from app.faces.models import Face, FaceMatch, NotMe, ProviderErasure
from app.faces.providers.base import (
    LOCAL_PROVIDER,
    DetectedFace,
    FaceBox,
    FaceProvider,
    GuestSelfies,
    StoredFace,
    keeps_copies,
)
from app.jobs import wakeup
from app.jobs.models import JobStatus


def store_faces(
    *, session: Session, photo_id: int, event_id: int, faces: Sequence[DetectedFace], provider: FaceProvider
) -> list[int]:
    """Insert the faces found in a photo; their ids, in order."""
    if not faces:
        return []
    first = search.number_faces(session=session, event_id=event_id, count=len(faces)) - len(faces) + 1
    rows = [
        Face(
            photo_id=photo_id,
            event_id=event_id,
            left=f.box.left,
            top=f.box.top,
            right=f.box.right,
            bottom=f.box.bottom,
            descriptor=provider.face_signature(f),
            provider=provider.name,
            model=provider.model,
            seq=first + i,
        )
        for i, f in enumerate(faces)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def _insert_matches(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert matches, ignoring (selfie, photo) pairs another worker recorded first and the
    photos each guest said were not of them."""
    if rows:
        found = session.execute(
            select(NotMe.user_id, NotMe.photo_id).where(
                NotMe.user_id.in_({r["user_id"] for r in rows}),
                NotMe.photo_id.in_({r["photo_id"] for r in rows}),
            )
        )
        refused = {(user_id, photo_id) for user_id, photo_id in found}
        rows = [r for r in rows if (r["user_id"], r["photo_id"]) not in refused]
    if not rows:
        return
    stmt = upsert_insert(session, FaceMatch).on_conflict_do_nothing(index_elements=["selfie_id", "photo_id"])
    session.execute(stmt, rows)


def match_selfie(
    *,
    session: Session,
    selfie_id: int,
    user_id: int,
    event_ids: Sequence[int],
    signature: bytes,
    image: Callable[[], bytes],
    provider: FaceProvider,
) -> int:
    """(Re)compute every match of a selfie in ``event_ids`` (all the user's events); the
    number found. Computed before anything is written, so no write lock is held while the
    provider works. Matches still found keep their row (and when they were found); photos the
    user said were not of them are left out of the search."""
    found = provider.find_photos(
        signature=signature,
        image=image,
        event_ids=event_ids,
        faces=search.EventFaces(session=session, model=provider.model),
        exclude_photos=set(not_me_photo_ids(session=session, user_id=user_id)),
    )
    photos = {m.photo_id for m in found}
    session.execute(
        delete(FaceMatch).where(FaceMatch.selfie_id == selfie_id, FaceMatch.photo_id.not_in(photos))
    )
    known = set(session.scalars(select(FaceMatch.photo_id).where(FaceMatch.selfie_id == selfie_id)))
    _insert_matches(
        session,
        [
            {
                "selfie_id": selfie_id,
                "user_id": user_id,
                "event_id": m.event_id,
                "photo_id": m.photo_id,
                "face_id": m.face_id,
                "distance": m.distance,
            }
            for m in found
            if m.photo_id not in known
        ],
    )
    return len(found)


def photo_faces(*, session: Session, photo_id: int, model: str) -> list[StoredFace]:
    """The photo's faces described by ``model``."""
    rows = session.execute(
        select(Face.id, Face.left, Face.top, Face.right, Face.bottom, Face.descriptor)
        .where(Face.photo_id == photo_id, Face.model == model)
        .order_by(Face.id)
    )
    return [StoredFace(r.id, FaceBox(r.left, r.top, r.right, r.bottom), r.descriptor) for r in rows]


def has_faces(*, session: Session, photo_id: int, model: str) -> bool:
    """Whether ``model`` has described faces of the photo."""
    return bool(session.scalar(select(exists().where(Face.photo_id == photo_id, Face.model == model))))


def events_of_other_models(*, session: Session, model: str) -> set[int]:
    """The events with local faces described by another model than ``model``."""
    stmt = select(Face.event_id).where(Face.provider == LOCAL_PROVIDER, Face.model != model).distinct()
    return set(session.scalars(stmt))


def move_to_model(*, session: Session, event_id: int, model: str) -> None:
    """The event's faces of other (local) models go, each match first moved to the face of
    ``model`` in the same photo that overlaps its old face most (a guest keeps the photo)."""
    old = session.execute(
        select(FaceMatch.id, FaceMatch.photo_id, Face.left, Face.top, Face.right, Face.bottom)
        .join(Face, Face.id == FaceMatch.face_id)
        .where(FaceMatch.event_id == event_id, Face.model != model)
        .order_by(FaceMatch.photo_id)
    ).all()
    new: dict[int, list[StoredFace]] = {}
    for match_id, photo_id, *box in old:
        before = FaceBox(*box)
        if photo_id not in new:
            new[photo_id] = photo_faces(session=session, photo_id=photo_id, model=model)
        best = max(new[photo_id], key=lambda face: face.box.iou(before), default=None)
        if best is not None and best.box.iou(before) > 0.3:
            session.execute(update(FaceMatch).where(FaceMatch.id == match_id).values(face_id=best.face_id))
    session.execute(
        delete(Face).where(Face.event_id == event_id, Face.provider == LOCAL_PROVIDER, Face.model != model)
    )


def match_photo_faces(
    *,
    session: Session,
    photo_id: int,
    event_id: int,
    faces: Sequence[StoredFace],
    selfies: GuestSelfies,
    image: Callable[[], bytes],
    provider: FaceProvider,
) -> set[int]:
    """Match a newly indexed photo's faces against ``selfies`` (those of the event's guests);
    the guests it matched."""
    if not faces:
        return set()
    found = provider.find_selfies(faces=faces, image=image, selfies=selfies) if len(selfies) else []
    _insert_matches(
        session,
        [
            {
                "selfie_id": m.selfie_id,
                "user_id": m.user_id,
                "event_id": event_id,
                "photo_id": photo_id,
                "face_id": m.face_id,
                "distance": m.distance,
            }
            for m in found
        ],
    )
    return {m.user_id for m in found}


def set_not_me(*, session: Session, user_id: int, photo_id: int, not_me: bool) -> None:
    """Record (or take back) that a photo is not of this user; their match with it goes."""
    if not_me:
        if (
            session.scalar(select(NotMe.id).where(NotMe.user_id == user_id, NotMe.photo_id == photo_id))
            is None
        ):
            session.add(NotMe(user_id=user_id, photo_id=photo_id))
        session.execute(delete(FaceMatch).where(FaceMatch.user_id == user_id, FaceMatch.photo_id == photo_id))
    else:
        session.execute(delete(NotMe).where(NotMe.user_id == user_id, NotMe.photo_id == photo_id))
    session.flush()


def queue_provider_erasure(
    *,
    session: Session,
    provider: str,
    what: str,
    signatures: Sequence[bytes] = (),
    event_id: int | None = None,
) -> None:
    """Erase faces at their remote provider once this transaction commits (a durable job of
    the face workers, ``faces/jobs.py``). The local provider keeps nothing elsewhere."""
    if not keeps_copies(provider) or (what != "event" and not signatures):
        return
    session.add(
        ProviderErasure(
            provider=provider,
            what=what,
            event_id=event_id,
            signatures="\n".join(bytes(s).decode() for s in signatures) or None,
            status=JobStatus.pending,
        )
    )
    session.flush()
    wakeup.notify_on_commit(session)


def forget_selfies(*, session: Session, selfies: Iterable[tuple[str, bytes | None]]) -> None:
    """Erase these selfies' faces (``(provider, signature)`` pairs) at their providers."""
    by_provider: dict[str, list[bytes]] = {}
    for provider, signature in selfies:
        if signature is not None:
            by_provider.setdefault(provider, []).append(signature)
    for provider, signatures in by_provider.items():
        queue_provider_erasure(session=session, provider=provider, what="selfies", signatures=signatures)


def forget_photo_faces(*, session: Session, photo_ids: Sequence[int], whole_event: bool = False) -> None:
    """Erase these photos' faces at their remote providers (``whole_event``: the events'
    whole lists, when the events themselves go)."""
    found: dict[tuple[str, int], list[bytes]] = {}
    rows = session.execute(
        select(Face.provider, Face.event_id, Face.descriptor).where(
            Face.photo_id.in_(photo_ids), Face.provider != LOCAL_PROVIDER
        )
    )
    for r in rows:
        found.setdefault((r.provider, r.event_id), []).append(r.descriptor)
    for (provider, event_id), signatures in found.items():
        if whole_event:
            queue_provider_erasure(session=session, provider=provider, what="event", event_id=event_id)
        else:
            queue_provider_erasure(
                session=session, provider=provider, what="faces", signatures=signatures, event_id=event_id
            )


def not_me_photo_ids(*, session: Session, user_id: int) -> list[int]:
    return list(
        session.scalars(select(NotMe.photo_id).where(NotMe.user_id == user_id).order_by(NotMe.photo_id))
    )


def delete_event_matches(*, session: Session, event_id: int, user_id: int | None = None) -> None:
    """The matches in an event (of one guest, or of everyone)."""
    stmt = delete(FaceMatch).where(FaceMatch.event_id == event_id)
    if user_id is not None:
        stmt = stmt.where(FaceMatch.user_id == user_id)
    session.execute(stmt)


def delete_user_matches(*, session: Session, user_id: int, keep_selfie_id: int | None = None) -> None:
    stmt = delete(FaceMatch).where(FaceMatch.user_id == user_id)
    if keep_selfie_id is not None:
        stmt = stmt.where(FaceMatch.selfie_id != keep_selfie_id)
    session.execute(stmt)


def match_count(*, session: Session, event_id: int) -> int:
    """How many (guest, photo) matches the event has."""
    return int(
        session.scalar(select(func.count()).select_from(FaceMatch).where(FaceMatch.event_id == event_id)) or 0
    )
