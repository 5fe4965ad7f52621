"""The photo job: index an uploaded photo, then match its faces with the guests' selfies.

Two committed steps under one lease: the faces (and the served copy and thumbnail), then
the matches. Committing the faces first closes the race with a selfie accepted meanwhile:
that selfie either sees these faces when it matches, or is seen by the matching step. A
retry after the first step only redoes the matching. The runner (``app.jobs.runner``)
claims, renews, retries and commits; this module only decides.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from PIL import Image
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.core.errors import AppError
from app.events.models import Event
from app.faces import search as faces_search
from app.faces import service as faces_service
from app.faces.images import load_rgb, make_thumbnail, probe_image, sanitized_original, served_jpeg
from app.faces.providers import get_face_provider
from app.faces.providers.base import FaceProvider
from app.jobs.kinds import JobKind, Outcome, Postpone, register, status_kind
from app.jobs.models import JobStatus
from app.notices import service as notices_service
from app.photos import service, uploads
from app.photos.models import EventPurge, Photo, PhotoStatus, PurgeReason
from app.selfies import service as selfies_service

log = logging.getLogger("app.photos.jobs")


def _failed(code: str, message: str) -> Outcome:
    return Outcome({"status": PhotoStatus.failed, "error_code": code, "error_message": message})


def _derived_files(
    photo: Photo, data: bytes, img: Image.Image, fmt: str, settings: Settings
) -> dict[str, str]:
    """The thumbnail and the served copy, from the photo decoded once (``img``)."""
    thumb_key = f"thumbs/{photo.event_id}/{photo.id}.jpg"
    storage.save(thumb_key, make_thumbnail(img, max_side=settings.thumbnail_size))
    if fmt in ("JPEG", "HEIF"):
        served, media_type = served_jpeg(img)
    else:  # PNG and WebP keep their format (transparency, 16-bit depth)
        served, media_type = sanitized_original(data, fmt, max_pixels=settings.max_image_pixels)
    served_key = f"served/{photo.event_id}/{photo.id}.{media_type.rsplit('/', 1)[-1]}"
    storage.save(served_key, served)
    return {"thumbnail_key": thumb_key, "served_key": served_key, "served_media_type": media_type}


def _find_faces(session: Session, photo: Photo, provider: FaceProvider) -> Outcome:
    """Step one: the photo's faces and served files."""
    settings = get_settings()
    data = storage.load(photo.original_key)
    # A direct upload's bytes were described by the browser: they must be what it said (a
    # wrong hash would make other bytes look like duplicates of these), and an image the
    # form upload would have taken (size, format, pixels).
    if photo.content_hash and hashlib.sha256(data).hexdigest() != photo.content_hash:
        return _failed("content_hash_mismatch", "The file's SHA-256 is not the one declared; send it again.")
    if len(data) > settings.photo_max_bytes:
        return _failed("file_too_large", "The file is larger than the limit.")
    info = probe_image(data, max_pixels=settings.max_image_pixels)
    img = load_rgb(data, max_pixels=settings.max_image_pixels)
    faces = provider.index_image(img, event_id=photo.event_id)
    files = _derived_files(photo, data, img, info.format, settings)
    faces_service.store_faces(
        session=session, photo_id=photo.id, event_id=photo.event_id, faces=faces, provider=provider
    )
    probed = {
        "original_format": info.format,
        "width": info.width,
        "height": info.height,
        "size_bytes": len(data),
    }
    return Outcome({"faces_count": len(faces), **probed, **files}, done=False)


def _match(session: Session, photo: Photo, provider: FaceProvider) -> Outcome:
    """Step two: matches with the selfies of the event's guests."""
    faces = faces_service.photo_faces(session=session, photo_id=photo.id, model=provider.model)
    key = photo.original_key
    for attempt in range(3):
        try:
            with session.begin_nested():
                selfies = selfies_service.event_guest_selfies(
                    session=session, event_id=photo.event_id, model=provider.model
                )
                matched = faces_service.match_photo_faces(
                    session=session,
                    photo_id=photo.id,
                    event_id=photo.event_id,
                    faces=faces,
                    selfies=selfies,
                    image=lambda: storage.load(key),
                    provider=provider,
                )
            break
        except IntegrityError:
            # A guest replaced their selfie meanwhile (its row is gone): read the
            # selfies again and redo the few matches.
            if attempt == 2:
                raise
    # The gallery grew: guests this photo may concern have their matches computed again, so
    # that it can join through their other photos, and bring earlier photos of theirs along.
    again = set(provider.rematch_candidates(faces=faces, selfies=selfies))
    for user_id in again:
        selfies_service.rematch(session=session, user_id=user_id)
    # Guests told later, by mail, once the organizer's batch has settled.
    notices_service.photos_matched(
        session=session, event_id=photo.event_id, photo_id=photo.id, user_ids=matched | again
    )
    return Outcome(
        {"status": PhotoStatus.indexed, "indexed_at": utcnow(), "error_code": None, "error_message": None}
    )


def _described_by_another_model(session: Session, photo: Photo, provider: FaceProvider) -> bool:
    """The recognizer changed between the two steps: the faces are found again (the old
    ones go with the event's re-description, ``photos/reembed.py``)."""
    return bool(photo.faces_count) and not faces_service.has_faces(
        session=session, photo_id=photo.id, model=provider.model
    )


def handle(session: Session, photo: Photo) -> Outcome:
    provider = get_face_provider()
    try:
        if photo.thumbnail_key is None or _described_by_another_model(session, photo, provider):
            return _find_faces(session, photo, provider)
        return _match(session, photo, provider)
    except FileNotFoundError:
        return _failed("original_missing", "The uploaded file is missing from storage.")
    except storage.StorageFull as exc:  # no room for its served copies now: later, no attempt used
        raise Postpone(exc.message, code=exc.code, retry_after=60) from exc
    except AppError as exc:  # the image itself is unusable: retrying cannot help
        return _failed(exc.code, exc.message)


def on_failed(photo: Photo) -> Callable[[], None]:
    """A photo that failed for good keeps its row (the organizer sees why) but not its files."""
    keys = photo.file_keys
    return lambda: storage.delete_all(keys)


PHOTO_JOB = register(
    JobKind(
        name="photo",
        model=Photo,
        todo=(PhotoStatus.pending, PhotoStatus.processing),
        failed_status=PhotoStatus.failed,
        handle=handle,
        retry_status=PhotoStatus.pending,
        claim_status=PhotoStatus.processing,
        priority=20,
        on_failed=on_failed,
    )
)


# --- erasing an event's photos ----------------------------------------------------------------


def _event_folders(event_id: int) -> list[str]:
    return [f"photos/{event_id}", f"thumbs/{event_id}", f"served/{event_id}"]


def handle_purge(session: Session, purge: EventPurge) -> Outcome:
    """One batch of an event's photos erased (rows, faces, matches, "not me" answers by
    cascade; files after the commit), until none is left; then the event's folders (files a
    crash left behind go with them) and, for a deleted event, its row."""
    settings = get_settings()
    if purge.reason == PurgeReason.sweep:
        queued = service.queue_retention_purges(session=session)
        orphans = service.sweep_orphan_files(session=session)
        abandoned = uploads.sweep_abandoned_uploads(session=session)
        log.info(
            "retention sweep: %d event(s) due, %d orphan file(s) deleted, %d abandoned upload(s) erased",
            len(queued),
            orphans,
            abandoned,
        )
        return Outcome({"status": JobStatus.pending, "attempts": 0}, retry_after=24 * 3600)
    if purge.event_id is None:  # only the sweep has no event: this row is damaged
        raise ValueError(f"purge {purge.id} ({purge.reason}) names no event")
    batch = list(
        session.scalars(
            select(Photo)
            .where(Photo.event_id == purge.event_id)
            .order_by(Photo.id)
            .limit(settings.purge_batch_size)
        )
    )
    if batch:
        keys = [k for p in batch for k in p.file_keys]
        faces_service.forget_photo_faces(
            session=session,
            photo_ids=[p.id for p in batch],
            whole_event=purge.reason == PurgeReason.deleted,
        )
        session.execute(delete(Photo).where(Photo.id.in_([p.id for p in batch])))
        return Outcome(
            {"photos_deleted": purge.photos_deleted + len(batch)},
            done=False,
            after_commit=lambda: storage.delete_all(keys),
        )
    event = session.get(Event, purge.event_id)
    if event is not None and purge.reason == PurgeReason.deleted:
        session.delete(event)
    elif event is not None:
        event.purged_at = utcnow()
    folders = _event_folders(purge.event_id)
    erase_gallery = faces_search.forget_gallery(session=session, event_id=purge.event_id)
    # A deleted event's job keeps only that an erasure of so many photos happened.
    forget = {"event_id": None} if purge.reason == PurgeReason.deleted else {}

    def erase_files() -> None:
        storage.delete_folders(folders)
        erase_gallery()

    return Outcome({"status": JobStatus.done, "finished_at": utcnow(), **forget}, after_commit=erase_files)


PURGE_JOB = register(status_kind(name="event-purge", model=EventPurge, handle=handle_purge, priority=30))
