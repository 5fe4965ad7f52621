"""Selfies: accepting an upload, the guest's view of its check, and their matched photos.
All selfie queries live here but those of the daily change limit (``selfies/changes.py``);
the face check itself is the selfie job (``selfies/jobs.py``).

An upload is counted when it starts, accepted after the cheap checks (size, format, pixels,
decoding cost) and queued: the queue is the database, so a crowd is never refused for its
size. A new upload cancels the guest's selfie still waiting for its check; an accepted selfie
replaces the previous one (and its matches) only once its face passed, so a refused selfie
keeps the old one. Erasing a guest's selfies removes their folder once committed.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.core.errors import NotFound, PayloadTooLarge, ServiceUnavailable
from app.core.throttle import Throttle
from app.core.uploads import Part, missing_files
from app.events.models import EventMembership
from app.faces import service as faces_service
from app.faces.images import FILE_EXTENSIONS, probe_selfie
from app.faces.models import FaceMatch
from app.faces.providers import configured_model
from app.faces.providers.base import GuestSelfies
from app.jobs import queue, wakeup
from app.selfies import changes
from app.selfies.models import Selfie, SelfieStatus
from app.selfies.schemas import MatchedPhoto, PublicStatus, SelfieState

PUBLIC_STATUS: dict[str, PublicStatus] = {
    SelfieStatus.pending: "checking",
    SelfieStatus.matching: "matching",
    SelfieStatus.ready: "ready",
    SelfieStatus.rejected: "rejected",
    SelfieStatus.failed: "rejected",
}
IN_PROGRESS = frozenset({"checking", "matching"})


log = logging.getLogger("app.selfies")
SELFIE_UPLOADS = Throttle("selfie-uploads", "throttle_selfies_per_guest")
TOO_MANY_SELFIES = "You have uploaded many selfies in a short time. Wait a little, then try again."
# Guests' selfies read from the database this many at a time for a new photo's matching.
_SELFIE_BLOCK = 2048


def _selfie_too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The selfie is larger than {settings.selfie_max_bytes // (1024 * 1024)} MiB.", code="image_too_large"
    )


def start_upload(*, session: Session, user_id: int, settings: Settings) -> None:
    """Before an upload's body is read (reads only): refuse it if the guest has used up the
    daily selfie changes (429 ``selfie_changes_exhausted``) or uploads (429
    ``too_many_requests``), else count the upload now, so that one abandoned half-way counts
    too."""
    SELFIE_UPLOADS.check(str(user_id), message=TOO_MANY_SELFIES)
    accepted = changes.has_accepted(session, user_id)
    changes.check_allowed(session=session, user_id=user_id, accepted=accepted, settings=settings)
    SELFIE_UPLOADS.hit(str(user_id))


def read_selfie(parts: Iterable[Part], settings: Settings) -> bytes:
    """The bytes of the one ``file`` part of an upload (422 ``no_file`` without one)."""
    for part in parts:
        if part.too_large:
            raise _selfie_too_large(settings)
        return part.read()
    raise missing_files("file")


def check_upload(data: bytes, settings: Settings) -> str:
    """Cheap checks done by the web process (no face model): size, format, pixels (a selfie
    has its own, lower, pixel limit: a phone's front camera is under 20 MP) and the cost of
    decoding it (no 16-bit image; a PNG, WebP or HEIC, decoded in full, has a lower limit
    still). Returns the format."""
    if len(data) > settings.selfie_max_bytes:
        raise _selfie_too_large(settings)
    return probe_selfie(
        data, max_pixels=settings.selfie_max_pixels, max_decode_pixels=settings.selfie_max_decode_pixels
    ).format


def accept_upload(
    *, session: Session, user_id: int, parts: Iterable[Part], settings: Settings
) -> tuple[Selfie, int]:
    """An upload's received body: checked (:func:`check_upload`), then stored and queued
    (:func:`create_selfie`)."""
    data = read_selfie(parts, settings)
    image_format = check_upload(data, settings)
    return create_selfie(
        session=session, user_id=user_id, data=data, image_format=image_format, settings=settings
    )


def create_selfie(
    *, session: Session, user_id: int, data: bytes, image_format: str, settings: Settings
) -> tuple[Selfie, int]:
    """Store the selfie and queue its face check; the guest's selfie still waiting for its
    check (if any) is cancelled. Only the daily limit of selfie changes (429
    ``selfie_changes_exhausted``) or a full disk (503) refuses it; the change itself is
    counted when the face check accepts it (``changes``). Returns the selfie and its place in
    the queue. The file is stored before the first query, so no pooled connection waits on
    the disk (or the bucket); then the guest's row is locked, so concurrent uploads of one
    guest are checked and cancel each other one at a time."""
    key = storage.new_key(f"selfies/{user_id}", FILE_EXTENSIONS[image_format])
    try:
        storage.save(key, data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ServiceUnavailable(
                "The server cannot store your selfie right now; try again in a minute.",
                code="storage_full",
                retry_after=60,
            ) from exc
        raise
    storage.delete_if_rolled_back(session, [key])
    changes.lock_guest(session, user_id)
    accepted = changes.has_accepted(session, user_id)
    changes.check_allowed(session=session, user_id=user_id, accepted=accepted, settings=settings)
    ahead = session.scalar(
        select(func.count())
        .select_from(Selfie)
        .where(Selfie.status == SelfieStatus.pending, Selfie.user_id != user_id)
    )
    waiting = list(
        session.scalars(
            select(Selfie).where(Selfie.user_id == user_id, Selfie.status == SelfieStatus.pending)
        )
    )
    for old in waiting:
        session.delete(old)
    storage.delete_after_commit(session, [old.image_key for old in waiting])
    selfie = Selfie(
        user_id=user_id,
        image_key=key,
        strict=settings.selfie_validation_strict,
        status=SelfieStatus.pending,
    )
    session.add(selfie)
    session.flush()
    wakeup.notify_on_commit(session)
    return selfie, int(ahead or 0) + 1


def latest_selfie(*, session: Session, user_id: int) -> Selfie | None:
    """The guest's latest upload, whatever its state."""
    return session.scalar(select(Selfie).where(Selfie.user_id == user_id).order_by(Selfie.id.desc()).limit(1))


def selfie_state(*, session: Session, selfie: Selfie) -> SelfieState:
    status = PUBLIC_STATUS[selfie.status]
    matches = session.scalar(
        select(func.count()).select_from(FaceMatch).where(FaceMatch.user_id == selfie.user_id)
    )
    error = None
    if status == "rejected" or selfie.error_code:
        # While in progress, an error says why it takes long (e.g. the provider is down).
        error = {"code": selfie.error_code or "selfie_failed", "message": selfie.error_message or ""}
    position = None
    if status == "checking":
        position = queue.queue_position(session, Selfie, selfie.id, todo=(SelfieStatus.pending,))
    return SelfieState(
        selfie_id=selfie.id,
        status=status,
        error=error,
        queue_position=position,
        matches=matches or 0,
        uploaded_at=selfie.created_at,
        checked_at=selfie.checked_at,
        matched_at=selfie.matched_at,
        needs_new_selfie=selfie.descriptor is not None and selfie.model != configured_model(get_settings()),
    )


def current_state(*, session: Session, user_id: int) -> SelfieState | None:
    """The state of the user's latest selfie, or None before any upload."""
    selfie = latest_selfie(session=session, user_id=user_id)
    return None if selfie is None else selfie_state(session=session, selfie=selfie)


@dataclass(frozen=True)
class Snapshot:
    """What a waiting client compares: the latest selfie, its status, the guest's matches."""

    selfie_id: int | None
    status: str | None
    matches: int


def snapshots(*, session: Session, user_ids: list[int]) -> dict[int, Snapshot]:
    """The snapshot of each of these guests, in two queries whatever their number."""
    latest = (
        select(func.max(Selfie.id)).where(Selfie.user_id.in_(user_ids)).group_by(Selfie.user_id)
    ).scalar_subquery()
    selfies: dict[int, tuple[int | None, str | None]] = {
        r.user_id: (r.id, PUBLIC_STATUS[r.status])
        for r in session.execute(
            select(Selfie.user_id, Selfie.id, Selfie.status).where(Selfie.id.in_(latest))
        )
    }
    counts: dict[int, int] = dict(
        session.execute(
            select(FaceMatch.user_id, func.count())
            .where(FaceMatch.user_id.in_(user_ids))
            .group_by(FaceMatch.user_id)
        ).all()
    )
    return {uid: Snapshot(*selfies.get(uid, (None, None)), int(counts.get(uid, 0))) for uid in user_ids}


def my_photos(*, session: Session, user_id: int, event_id: int | None) -> list[MatchedPhoto]:
    """Photos the user's current selfie matched, in events they belong to, best first."""
    stmt = (
        select(FaceMatch.photo_id, FaceMatch.event_id, FaceMatch.distance, FaceMatch.created_at)
        .join(
            EventMembership,
            (EventMembership.user_id == FaceMatch.user_id) & (EventMembership.event_id == FaceMatch.event_id),
        )
        .where(FaceMatch.user_id == user_id)
        .order_by(FaceMatch.distance, FaceMatch.photo_id)
    )
    if event_id is not None:
        stmt = stmt.where(FaceMatch.event_id == event_id)
    return [
        MatchedPhoto(
            id=r.photo_id,
            event_id=r.event_id,
            thumbnail_url=f"/api/photos/{r.photo_id}/thumbnail",
            url=f"/api/photos/{r.photo_id}/original",
            distance=round(r.distance, 4),
            matched_at=r.created_at,
        )
        for r in session.execute(stmt)
    ]


def photo_grid(
    *, session: Session, user_id: int, event_id: int | None, visit: bool
) -> tuple[list[MatchedPhoto], set[int]]:
    """The guest's photos (:func:`my_photos`) and the ids of those new since their previous
    visit of the page, per event (matched after it; none on a first visit). ``visit``: the
    page itself, not a refresh of its grid: this visit is recorded (the caller commits)."""
    photos = my_photos(session=session, user_id=user_id, event_id=event_id)
    stmt = select(EventMembership).where(EventMembership.user_id == user_id)
    memberships = list(
        session.scalars(stmt if event_id is None else stmt.where(EventMembership.event_id == event_id))
    )
    if visit:
        now = utcnow()
        for membership in memberships:
            membership.photos_new_since, membership.photos_seen_at = membership.photos_seen_at, now
        session.flush()
    since = {m.event_id: m.photos_new_since for m in memberships}
    return photos, {p.id for p in photos if (s := since.get(p.event_id)) is not None and p.matched_at > s}


def neighbours(
    *, session: Session, user_id: int, photo_id: int, event_id: int | None
) -> tuple[int | None, int | None]:
    """The photos before and after ``photo_id`` in the guest's list, in its order (None at its
    ends, or when the photo is not in it)."""
    ids = [p.id for p in my_photos(session=session, user_id=user_id, event_id=event_id)]
    if photo_id not in ids:
        return None, None
    at = ids.index(photo_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def delete_selfies(*, session: Session, user_id: int) -> int:
    """Erase the guest's selfies (rows, images) and all their matches; nothing is matched
    again until a new selfie. Deleting an accepted selfie counts as a change (``changes``):
    never refused, but a new selfie then is while the limit is used up. How many selfies
    there were."""
    changes.lock_guest(session, user_id)
    if changes.has_accepted(session, user_id):
        changes.record(session, user_id)
    selfies = list(session.scalars(select(Selfie).where(Selfie.user_id == user_id)))
    faces_service.forget_selfies(session=session, selfies=[(s.provider, s.descriptor) for s in selfies])
    session.execute(delete(FaceMatch).where(FaceMatch.user_id == user_id))
    for selfie in selfies:
        session.delete(selfie)
    session.flush()
    storage.delete_after_commit(session, [s.image_key for s in selfies])
    return len(selfies)


def delete_folder_after_commit(*, session: Session, user_id: int) -> None:
    """Once the transaction commits, remove what is left under the guest's selfie folder
    (an erased account): local storage keeps a folder once its files are gone, and a bucket
    may hold an upload that was in flight."""
    session.info.setdefault(_FOLDERS, []).append(f"selfies/{user_id}")


_FOLDERS = "selfie_folders_after_commit"


@event.listens_for(Session, "after_commit")
def _remove_folders(session: Session) -> None:
    if folders := session.info.pop(_FOLDERS, None):
        try:
            storage.delete_folders(folders)
        except Exception:  # the rows are gone for good; what is left is swept as unnamed files
            log.warning("could not remove the selfie folders %s", folders, exc_info=True)


@event.listens_for(Session, "after_rollback")
def _keep_folders(session: Session, *_: Any) -> None:
    session.info.pop(_FOLDERS, None)


def not_me(*, session: Session, user_id: int, photo_id: int, undo: bool = False) -> None:
    """ "Not me": the photo leaves the guest's list and is never matched to them again; the
    guest's matches are then recomputed in the background, so photos that joined only through
    this one (gallery-aware matching) go too. ``undo`` takes it back, recomputed the same way."""
    if not undo and photo_id not in {
        p.id for p in my_photos(session=session, user_id=user_id, event_id=None)
    }:
        raise NotFound("This photo is not in your list.", code="photo_not_found")
    faces_service.set_not_me(session=session, user_id=user_id, photo_id=photo_id, not_me=not undo)
    rematch(session=session, user_id=user_id)


def rematch(*, session: Session, user_id: int) -> None:
    """Recompute the user's matches (e.g. after joining an event) in the background."""
    selfie = session.scalar(
        select(Selfie)
        .where(Selfie.user_id == user_id, Selfie.status == SelfieStatus.ready, Selfie.descriptor.is_not(None))
        .order_by(Selfie.id.desc())
        .limit(1)
    )
    if selfie is not None:
        selfie.status = SelfieStatus.matching
        selfie.attempts = 0
        session.flush()
        wakeup.notify_on_commit(session)


def event_guest_selfies(*, session: Session, event_id: int, model: str) -> GuestSelfies:
    """The accepted selfies of the event's guests whose template ``model`` made, read a block
    at a time (a server-side cursor on PostgreSQL) into arrays."""
    stmt = (
        select(Selfie.id, Selfie.user_id, Selfie.descriptor)
        .join(EventMembership, EventMembership.user_id == Selfie.user_id)
        .where(
            EventMembership.event_id == event_id,
            Selfie.status.in_([SelfieStatus.matching, SelfieStatus.ready]),
            Selfie.descriptor.is_not(None),
            Selfie.model == model,
        )
    )
    rows = session.execute(stmt, execution_options={"yield_per": _SELFIE_BLOCK})
    return GuestSelfies.of((i, user, d) for i, user, d in rows if d is not None)
