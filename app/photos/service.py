"""Event photos: accepting uploads, progress and access. All photo queries live here;
indexing is the photo job (``photos/jobs.py``)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, NamedTuple

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounts.models import Role, User
from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.core.errors import Conflict, NotFound, PayloadTooLarge
from app.events import service as events_service
from app.events.models import Event, EventMembership
from app.events.schemas import FaceReembedProgress, PhotoCounts
from app.faces import service as faces_service
from app.faces.images import FILE_EXTENSIONS, probe_image
from app.faces.models import Face, FaceMatch, FaceReembed
from app.jobs import wakeup
from app.jobs.models import JobStatus
from app.photos.models import EventPurge, Photo, PhotoStatus, PurgeReason
from app.selfies.models import Selfie


def clean_filename(name: str | None) -> str:
    base = (name or "photo").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable() and c != "\x00").strip()
    return base[:255] or "photo"


def file_too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is larger than {settings.photo_max_bytes // (1024 * 1024)} MiB.", code="file_too_large"
    )


class Accepted(NamedTuple):
    photo: Photo
    duplicate: bool  # the event already had these bytes: ``photo`` is that one


def _hash_of(data: bytes | IO[bytes]) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    data.seek(0)
    while chunk := data.read(storage.CHUNK_BYTES):
        digest.update(chunk)
    data.seek(0)
    return digest.hexdigest()


def find_duplicate(*, session: Session, event_id: int, content_hash: str) -> Photo | None:
    """The event's photo with these bytes, among those not failed (at most one: the partial
    unique index ``uq_photos_event_id_content_hash``)."""
    return session.scalar(
        select(Photo)
        .where(
            Photo.event_id == event_id,
            Photo.content_hash == content_hash,
            Photo.status != PhotoStatus.failed,
        )
        .limit(1)
    )


def insert_unique(session: Session, photo: Photo) -> Photo | None:
    """Insert ``photo``; None when another request stored the same bytes in the event first."""
    try:
        with session.begin_nested():
            session.add(photo)
            session.flush()
    except IntegrityError:
        return None
    return photo


def accept_photo(
    *,
    session: Session,
    event: Event,
    uploader: User,
    filename: str,
    data: bytes | IO[bytes],
    content_hash: str | None = None,
) -> Accepted:
    """Store one uploaded original (bytes, or a file streamed on to storage) and queue it for
    indexing. Raises for a bad file. The same bytes already in the event are not stored
    again (``Accepted.duplicate``); a direct upload of them left unfinished is finished with
    these bytes. ``content_hash``: the SHA-256 computed while the file arrived, if it was."""
    settings = get_settings()
    size = len(data) if isinstance(data, bytes) else data.seek(0, io.SEEK_END)
    if size > settings.photo_max_bytes:
        raise file_too_large(settings)
    info = probe_image(data, max_pixels=settings.max_image_pixels)  # leaves a file rewound
    content_hash = content_hash or _hash_of(data)
    existing = find_duplicate(session=session, event_id=event.id, content_hash=content_hash)
    if existing is not None and existing.status != PhotoStatus.uploading:
        return Accepted(existing, True)
    if existing is not None:  # signed for the bucket, never completed: these bytes finish it
        storage.save(existing.original_key, data)
        queue_uploaded(session, existing)
        return Accepted(existing, True)
    key = storage.new_key(f"photos/{event.id}", FILE_EXTENSIONS[info.format])
    storage.save(key, data)
    storage.delete_if_rolled_back(session, [key])
    photo = insert_unique(
        session,
        Photo(
            event_id=event.id,
            uploaded_by=uploader.id,
            filename=filename,
            original_key=key,
            original_format=info.format,
            size_bytes=size,
            width=info.width,
            height=info.height,
            content_hash=content_hash,
            status=PhotoStatus.pending,
        ),
    )
    if photo is None:  # the same bytes arrived meanwhile by another request
        storage.delete_after_commit(session, [key])
        winner = find_duplicate(session=session, event_id=event.id, content_hash=content_hash)
        if winner is None:
            raise Conflict("The photo was sent twice at once; send it again.", code="conflict")
        return Accepted(winner, True)
    wakeup.notify_on_commit(session)
    return Accepted(photo, False)


def queue_uploaded(session: Session, photo: Photo) -> None:
    """An ``uploading`` photo whose file is in storage goes to the photo job (once)."""
    session.execute(
        update(Photo)
        .where(Photo.id == photo.id, Photo.status == PhotoStatus.uploading)
        .values(status=PhotoStatus.pending)
        .execution_options(synchronize_session=False)
    )
    session.refresh(photo)
    wakeup.notify_on_commit(session)


def delete_photo(*, session: Session, event: Event, photo_id: int) -> None:
    """Erase a photo of ``event``: its row, faces, matches and "not me" answers (cascades),
    and its files once committed. Guests stop seeing it at once."""
    photo = session.get(Photo, photo_id)
    if photo is None or photo.event_id != event.id:
        raise NotFound("No such photo in this event.", code="photo_not_found")
    keys = photo.file_keys
    faces_service.forget_photo_faces(session=session, photo_ids=[photo.id])
    session.delete(photo)
    session.flush()
    storage.delete_after_commit(session, keys)


def start_event_erasure(*, session: Session, event: Event) -> EventPurge:
    """Delete an event: it is gone for guests at once; a durable job erases its photos, their
    faces and files in batches, then the event itself (see ``photos/jobs.py``)."""
    events_service.close_for_erasure(session=session, event=event)
    purge = EventPurge(event_id=event.id, reason=PurgeReason.deleted, status=JobStatus.pending)
    session.add(purge)
    session.flush()
    wakeup.notify_on_commit(session)
    return purge


def sweep_orphan_files(*, session: Session, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete the media files no row names any more (a crash between a commit and its file
    deletions, rows deleted by hand), if older than ``older_than`` (uploads in flight are
    written before their row). How many were deleted."""
    named: set[str] = set()
    for column in (Photo.original_key, Photo.thumbnail_key, Photo.served_key, Selfie.image_key):
        named.update(k for k in session.scalars(select(column).where(column.is_not(None))) if k)
    return storage.delete_unnamed(named, older_than=older_than)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def purge_dates(*, session: Session, events: Sequence[Event]) -> dict[int, datetime | None]:
    """When each of ``events`` has its photos, faces and matches erased (``purge_at``): its end
    (``ends_at``) or, when it has none, its last upload (its newest photo's ``created_at``),
    plus its ``retention_days``. None for an event with neither an end nor a photo yet; an
    event without an end whose photos were purged answers the date they were."""
    undated = [e.id for e in events if e.ends_at is None]
    last: dict[int, datetime] = {}
    for start in range(0, len(undated), 500):
        rows = session.execute(
            select(Photo.event_id, func.max(Photo.created_at))
            .where(Photo.event_id.in_(undated[start : start + 500]))
            .group_by(Photo.event_id)
        )
        last.update({event_id: newest for event_id, newest in rows})
    dates: dict[int, datetime | None] = {}
    for event in events:
        counted_from = event.ends_at or last.get(event.id)
        if counted_from is not None:
            dates[event.id] = _aware(counted_from) + timedelta(days=event.retention_days)
        else:
            dates[event.id] = _aware(event.purged_at) if event.purged_at else None
    return dates


def queue_retention_purges(*, session: Session) -> list[EventPurge]:
    """A purge job for each event holding photos whose erasure date (``purge_dates``) has
    passed, with or without an end date (and none queued yet). Photos uploaded after a purge
    are purged again by the next sweep."""
    queued = set(
        session.scalars(
            select(EventPurge.event_id).where(
                EventPurge.reason == PurgeReason.retention, EventPurge.status.in_(JobStatus.todo())
            )
        )
    )
    holding_photos = list(
        session.scalars(
            select(Event).where(
                Event.deleting_at.is_(None), exists(select(Photo.id).where(Photo.event_id == Event.id))
            )
        )
    )
    now = utcnow()
    dates = purge_dates(session=session, events=holding_photos)
    purges = [
        EventPurge(event_id=event.id, reason=PurgeReason.retention, status=JobStatus.pending)
        for event in holding_photos
        if event.id not in queued and (due := dates[event.id]) is not None and due <= now
    ]
    session.add_all(purges)
    session.flush()
    if purges:
        wakeup.notify_on_commit(session)
    return purges


def photo_counts(*, session: Session, event_id: int) -> PhotoCounts:
    rows = session.execute(
        select(Photo.status, func.count()).where(Photo.event_id == event_id).group_by(Photo.status)
    ).all()
    return PhotoCounts(**{status: n for status, n in rows})


def count_photos(*, session: Session, event_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(Photo).where(Photo.event_id == event_id)) or 0)


def recount_faces(*, session: Session, event_id: int) -> None:
    """Each photo of the event's ``faces_count`` from its face rows (after faces changed model)."""
    per_photo = select(func.count()).select_from(Face).where(Face.photo_id == Photo.id).scalar_subquery()
    session.execute(update(Photo).where(Photo.event_id == event_id).values(faces_count=per_photo))


def faces_count(*, session: Session, event_id: int) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Photo.faces_count), 0)).where(Photo.event_id == event_id)
        )
        or 0
    )


def list_photos(
    *, session: Session, event_id: int, status: str | None, limit: int, offset: int
) -> list[Photo]:
    stmt = select(Photo).where(Photo.event_id == event_id)
    if status:
        stmt = stmt.where(Photo.status == status)
    return list(session.scalars(stmt.order_by(Photo.id).limit(limit).offset(offset)))


def photo_for_viewer(*, session: Session, user: User, photo_id: int) -> Photo:
    """The photo if ``user`` may see it: its event's organizer (or an admin), or a guest
    of the event matched in it. Anything else is a 404, whether or not it exists."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise NotFound("No such photo.", code="photo_not_found")
    if user.role == Role.admin:
        return photo
    organizer_id = session.scalar(select(Event.organizer_id).where(Event.id == photo.event_id))
    if organizer_id == user.id:
        return photo
    matched = session.scalar(
        select(FaceMatch.id)
        .join(
            EventMembership,
            (EventMembership.user_id == FaceMatch.user_id) & (EventMembership.event_id == FaceMatch.event_id),
        )
        .where(FaceMatch.user_id == user.id, FaceMatch.photo_id == photo_id)
        .limit(1)
    )
    if matched is None:
        raise NotFound("No such photo.", code="photo_not_found")
    return photo


def served_file(photo: Photo, *, thumbnail: bool) -> tuple[str, str]:
    """(storage key, media type) of what is served for a photo."""
    key = photo.thumbnail_key if thumbnail else photo.served_key
    if key is None:
        raise Conflict("This photo is still being processed.", code="photo_not_ready")
    return key, "image/jpeg" if thumbnail else (photo.served_media_type or "image/jpeg")


def reembed_progress(*, session: Session, event_id: int) -> FaceReembedProgress | None:
    """The event's latest re-embedding, for the organizer (None if its faces never changed model)."""
    job = session.scalar(
        select(FaceReembed).where(FaceReembed.event_id == event_id).order_by(FaceReembed.id.desc()).limit(1)
    )
    if job is None:
        return None
    return FaceReembedProgress(
        model=job.model, status=job.status, photos_done=job.photos_done, photos_total=job.photos_total
    )


UNSETTLED = (PhotoStatus.uploading, PhotoStatus.pending, PhotoStatus.processing)  # no thumbnail yet


@dataclass(frozen=True)
class PhotoPage:
    """Page ``page`` (from 1) of an event's photos, oldest first, and how many it holds in all."""

    photos: list[Photo]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def after(self) -> int:
        """The largest id on the page: a photo that lands on it later has a larger one."""
        return max((p.id for p in self.photos), default=0)


def photo_page(*, session: Session, event_id: int, page: int, per_page: int) -> PhotoPage:
    """Page ``page`` of the event's photos (the last one when ``page`` is beyond it)."""
    total = count_photos(session=session, event_id=event_id)
    page = min(max(page, 1), max(1, -(-total // per_page)))
    offset = (page - 1) * per_page
    photos = list_photos(session=session, event_id=event_id, status=None, limit=per_page, offset=offset)
    return PhotoPage(photos=photos, total=total, page=page, per_page=per_page)


def photo_page_changes(
    *, session: Session, event_id: int, page: int, per_page: int, after: int, unsettled: Collection[int]
) -> tuple[PhotoPage, list[Photo]]:
    """The page now, and those of its photos that changed since a client saw it: newer than
    ``after`` (its largest id then), or ``unsettled`` then and indexed or failed now."""
    now = photo_page(session=session, event_id=event_id, page=page, per_page=per_page)
    waiting = set(unsettled)
    return now, [p for p in now.photos if p.id > after or (p.id in waiting and p.status not in UNSETTLED)]


def photos_of_event(*, session: Session, event_id: int, photo_ids: Collection[int]) -> list[Photo]:
    """Those of ``photo_ids`` that are photos of the event, oldest first."""
    ids = list(photo_ids)[:1000]
    where = (Photo.event_id == event_id, Photo.id.in_(ids))
    return list(session.scalars(select(Photo).where(*where).order_by(Photo.id))) if ids else []


def delete_photos(*, session: Session, event: Event, photo_ids: Collection[int]) -> int:
    """Erase the photos of ``event`` among ``photo_ids`` as ``delete_photo`` does one; how many
    were (the id of another event's photo, or of one already gone, is skipped)."""
    photos = photos_of_event(session=session, event_id=event.id, photo_ids=photo_ids)
    keys = [key for photo in photos for key in photo.file_keys]
    if photos:
        faces_service.forget_photo_faces(session=session, photo_ids=[p.id for p in photos])
    for photo in photos:
        session.delete(photo)
    session.flush()
    storage.delete_after_commit(session, keys)
    return len(photos)


def photos_per_event(*, session: Session, event_ids: Collection[int]) -> dict[int, int]:
    """How many photos each event holds, in one query (per 500 events)."""
    ids, counts = list(event_ids), dict.fromkeys(event_ids, 0)
    for start in range(0, len(ids), 500):
        where = Photo.event_id.in_(ids[start : start + 500])
        rows = session.execute(select(Photo.event_id, func.count()).where(where).group_by(Photo.event_id))
        counts.update({event_id: int(n) for event_id, n in rows})
    return counts
