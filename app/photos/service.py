"""Event photos: accepting uploads, indexing them (worker side), progress and access.
All photo queries live here."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounts.models import Role, User
from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import session_scope, utcnow
from app.core.errors import AppError, Conflict, NotFound, PayloadTooLarge
from app.events.models import Event, EventMembership
from app.faces import service as faces_service
from app.faces.images import FILE_EXTENSIONS, load_rgb, make_thumbnail, probe_image, sanitized_original
from app.faces.models import FaceMatch
from app.faces.provider import FaceProvider, ProviderUnavailable, StoredFace
from app.jobs import queue
from app.photos.models import Photo, PhotoStatus
from app.photos.schemas import PhotoCounts

log = logging.getLogger("app.photos")


def clean_filename(name: str | None) -> str:
    base = (name or "photo").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable() and c != "\x00").strip()
    return base[:255] or "photo"


def accept_photo(*, session: Session, event: Event, uploader: User, filename: str, data: bytes) -> Photo:
    """Store one uploaded original and queue it for indexing. Raises for a bad file."""
    settings = get_settings()
    if len(data) > settings.photo_max_bytes:
        raise PayloadTooLarge(
            f"The file is larger than {settings.photo_max_bytes // (1024 * 1024)} MiB.",
            code="file_too_large",
        )
    info = probe_image(data, max_pixels=settings.max_image_pixels)
    key = storage.new_key(f"photos/{event.id}", FILE_EXTENSIONS[info.format])
    storage.save(key, data)
    photo = Photo(
        event_id=event.id,
        uploaded_by=uploader.id,
        filename=filename,
        original_key=key,
        original_format=info.format,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        status=PhotoStatus.pending,
    )
    session.add(photo)
    session.flush()
    return photo


def photo_counts(*, session: Session, event_id: int) -> PhotoCounts:
    rows = session.execute(
        select(Photo.status, func.count()).where(Photo.event_id == event_id).group_by(Photo.status)
    ).all()
    return PhotoCounts(**{status: n for status, n in rows})


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


# --- worker side ---------------------------------------------------------------------


def _fail(session: Session, photo: Photo, worker_id: str, code: str, message: str) -> None:
    queue.finish(
        session, Photo, photo.id, worker_id, status=PhotoStatus.failed, error_code=code, error_message=message
    )
    log.warning("photo %s failed: %s: %s", photo.id, code, message)


def _derived_files(photo: Photo, data: bytes, settings: Settings) -> tuple[str, str, str]:
    img = load_rgb(data, max_pixels=settings.max_image_pixels)
    thumb_key = f"thumbs/{photo.event_id}/{photo.id}.jpg"
    storage.save(thumb_key, make_thumbnail(img, max_side=settings.thumbnail_size))
    served, media_type = sanitized_original(data, photo.original_format, max_pixels=settings.max_image_pixels)
    served_key = f"served/{photo.event_id}/{photo.id}.{media_type.rsplit('/', 1)[-1]}"
    storage.save(served_key, served)
    return thumb_key, served_key, media_type


def index_next_photo(*, worker_id: str, provider: FaceProvider, settings: Settings | None = None) -> bool:
    """Claim one photo and index it in two committed steps: its faces (and served files),
    then its matches with the guests' selfies. A retry after the first step (a crash, or the
    provider unavailable) only redoes the matching. False when there was nothing to do."""
    settings = settings or get_settings()
    with session_scope() as session:
        photo = queue.claim_next(
            session,
            Photo,
            todo=(PhotoStatus.pending, PhotoStatus.processing),
            worker_id=worker_id,
            settings=settings,
            set_status=PhotoStatus.processing,
        )
        if photo is None:
            return False
        photo_id, event_id, original_key = photo.id, photo.event_id, photo.original_key
        if failure := queue.gave_up(photo, settings):
            _fail(session, photo, worker_id, failure["error_code"], failure["error_message"])
            return True
        try:
            if photo.thumbnail_key is None and not _find_faces(session, photo, worker_id, provider, settings):
                return True
            stored = faces_service.photo_faces(session=session, photo_id=photo_id)
            _match_against_guests(session, photo_id, event_id, stored, original_key, provider)
        except ProviderUnavailable as exc:
            log.warning("photo %s postponed: %s", photo_id, exc.message)
            queue.postpone(
                session,
                Photo,
                photo_id,
                worker_id,
                status=PhotoStatus.pending,
                error_code="provider_unavailable",
                message=f"The face provider is unavailable; retrying automatically. ({exc.message})",
                delay=exc.retry_after,
            )
            return True
        except FileNotFoundError:
            _fail(session, photo, worker_id, "original_missing", "The uploaded file is missing from storage.")
            return True
        except AppError as exc:  # the image itself is unusable: retrying cannot help
            _fail(session, photo, worker_id, exc.code, exc.message)
            return True
        except Exception as exc:
            log.exception("indexing photo %s failed", photo_id)
            queue.crashed(
                session,
                Photo,
                photo,
                photo_id,
                worker_id,
                exc=exc,
                settings=settings,
                retry_status=PhotoStatus.pending,
                failed_status=PhotoStatus.failed,
            )
            return True
        queue.finish(
            session,
            Photo,
            photo_id,
            worker_id,
            status=PhotoStatus.indexed,
            indexed_at=utcnow(),
            error_code=None,
            error_message=None,
        )
    return True


def _find_faces(
    session: Session, photo: Photo, worker_id: str, provider: FaceProvider, settings: Settings
) -> bool:
    """Step one: the photo's faces and served files, committed; False if the lease was lost.

    Committed before matching so that a selfie accepted meanwhile either sees these faces
    or is seen by the matching step (its signature is committed before it matches)."""
    data = storage.load(photo.original_key)
    faces = provider.index_photo(data, event_id=photo.event_id)
    thumb_key, served_key, media_type = _derived_files(photo, data, settings)
    faces_service.store_faces(
        session=session, photo_id=photo.id, event_id=photo.event_id, faces=faces, provider=provider
    )
    ok = queue.fenced_update(
        session,
        Photo,
        photo.id,
        worker_id,
        faces_count=len(faces),
        thumbnail_key=thumb_key,
        served_key=served_key,
        served_media_type=media_type,
    )
    if ok:
        session.commit()
    else:
        session.rollback()
    return ok


def _match_against_guests(
    session: Session,
    photo_id: int,
    event_id: int,
    faces: Sequence[StoredFace],
    original_key: str,
    provider: FaceProvider,
) -> None:
    """Step two: matches with the selfies of the event's guests (left uncommitted)."""
    for attempt in range(3):
        try:
            faces_service.match_photo_faces(
                session=session,
                photo_id=photo_id,
                event_id=event_id,
                faces=faces,
                image=lambda: storage.load(original_key),
                provider=provider,
            )
            session.flush()
            return
        except IntegrityError:
            # A guest replaced their selfie meanwhile (its row is gone): read the
            # selfies again and redo the few matches.
            session.rollback()
            if attempt == 2:
                raise
