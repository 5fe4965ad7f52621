"""Event photos: the organizer's bulk upload (through this node, or signed for a direct
upload to the bucket), listing and deletion; each photo served to its organizer and the
guests matched in it."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from app.accounts.deps import CurrentOrganizer, CurrentUser
from app.accounts.models import User
from app.core import storage
from app.core.config import get_settings
from app.core.database import SessionDep, release_connection
from app.core.errors import AppError, NotFound
from app.core.limits import ConcurrencyCap
from app.core.openapi import Tag, errors
from app.core.schemas import IdPath, OffsetQuery
from app.core.uploads import Part, missing_files, multipart_body, received_files
from app.events.models import Event
from app.events.service import get_managed_event
from app.photos import service, uploads
from app.photos.models import PhotoStatus
from app.photos.schemas import (
    AcceptedPhoto,
    CompletedUpload,
    CompleteUploadIn,
    PhotoList,
    PhotoOut,
    PhotoUploadResponse,
    RejectedPhoto,
    UploadsIn,
    UploadsOut,
)

router = APIRouter(prefix="/api", tags=[Tag.photos])
#: Photo uploads being received by this worker (per organizer).
UPLOADS = ConcurrencyCap("photo uploads")
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}}}},
    307: {"description": "With S3 storage: a redirect to a short-lived URL of the file in the bucket."},
}


@router.post(
    "/events/{event_id}/photos",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(403, 404, 429),
    openapi_extra=multipart_body("files", "Repeat the field for each photo.", many=True),
)
async def upload_photos(
    event_id: IdPath, request: Request, organizer: CurrentOrganizer, session: SessionDep
) -> PhotoUploadResponse:
    """Upload event photos (multipart field ``files``, repeated). JPEG, PNG, WebP, HEIC.

    Each good file is stored and queued for face indexing (202); a bad file is rejected
    on its own, with a reason, and does not stop the others. A file whose bytes the event
    already has is not stored again: it is accepted with ``duplicate: true`` and that
    photo's id. The token, the role and the event are checked before the body is read. The
    body must arrive within ``PHOTO_UPLOAD_MAX_SECONDS`` (408); an organizer sends at most
    ``PHOTO_UPLOADS_PER_ORGANIZER`` uploads at once (429).
    """
    settings = get_settings()
    event = await run_in_threadpool(_managed_event, session, organizer, event_id)
    with UPLOADS.held(
        str(organizer.id),
        per_owner=settings.photo_uploads_per_organizer,
        per_worker=settings.photo_uploads_per_worker,
    ):
        # The body is read here, by the event loop (a slow client holds no thread), and the
        # files are stored once it is complete (no transaction waits on the client).
        async with received_files(
            request,
            fields={"files"},
            max_part_bytes=settings.photo_max_bytes,
            max_parts=settings.photo_upload_max_files,
        ) as parts:
            return await run_in_threadpool(_accept_all, session, event, organizer, parts)


def _managed_event(session: Session, organizer: User, event_id: int) -> Event:
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    release_connection(session)  # no pooled connection is held while the body arrives
    return event


def _accept_all(session: Session, event: Event, organizer: User, parts: list[Part]) -> PhotoUploadResponse:
    settings = get_settings()
    accepted: list[AcceptedPhoto] = []
    rejected: list[RejectedPhoto] = []
    for part in parts:
        filename = service.clean_filename(part.filename)
        try:
            if part.too_large:
                raise service.file_too_large(settings)
            photo, duplicate = service.accept_photo(
                session=session,
                event=event,
                uploader=organizer,
                filename=filename,
                data=part.file,
                content_hash=part.sha256,
            )
        except AppError as exc:
            rejected.append(
                RejectedPhoto(filename=filename, error={"code": exc.code, "message": exc.message})
            )
        else:
            accepted.append(AcceptedPhoto(id=photo.id, filename=filename, duplicate=duplicate))
    if not accepted and not rejected:
        raise missing_files("files")
    return PhotoUploadResponse(accepted=accepted, rejected=rejected)


@router.post("/events/{event_id}/photos/uploads", responses=errors(403, 404, 409, 429))
def sign_uploads(
    event_id: IdPath, body: UploadsIn, organizer: CurrentOrganizer, session: SessionDep
) -> UploadsOut:
    """Direct upload to the bucket, step 1: describe the files (name, size, type, SHA-256).

    Per file, in order: ``duplicate`` (the event has these bytes: ``photo_id``), ``rejected``
    (``error``: ``unsupported_format``, ``file_too_large``), or ``upload``: a photo waiting
    for its file, with a presigned ``url`` to ``PUT`` it to (with ``headers``), or, above 16
    MiB, ``parts`` URLs of ``part_bytes`` each under ``upload_id``. The URLs last
    ``expires_in`` seconds. 409 ``direct_upload_unavailable`` when photos are not stored in a
    bucket that browsers reach: use ``POST /api/events/{id}/photos``."""
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    files = uploads.sign_uploads(session=session, event=event, uploader=organizer, files=body.files)
    return UploadsOut(files=files)


@router.post("/events/{event_id}/photos/uploads/{photo_id}/complete", responses=errors(403, 404, 409))
def complete_upload(
    event_id: IdPath,
    photo_id: IdPath,
    organizer: CurrentOrganizer,
    session: SessionDep,
    body: CompleteUploadIn | None = None,
) -> CompletedUpload:
    """Direct upload, step 2: the file is in the bucket (for a multipart upload: its
    ``upload_id`` and each part's ETag). The bucket is checked (the object, its size) and
    the photo is queued for indexing (``pending``); completing again answers the photo as it
    is. 409 ``upload_missing``, ``upload_size_mismatch`` (the object is deleted: send it
    again), ``upload_incomplete`` (the parts could not be assembled)."""
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    body = body or CompleteUploadIn()
    photo = uploads.complete_upload(
        session=session,
        event=event,
        photo_id=photo_id,
        upload_id=body.upload_id,
        parts=[(p.number, p.etag) for p in body.parts],
    )
    return CompletedUpload(id=photo.id, status=photo.status)


@router.delete(
    "/events/{event_id}/photos/{photo_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(403, 404)
)
def delete_photo(
    event_id: IdPath, photo_id: IdPath, organizer: CurrentOrganizer, session: SessionDep
) -> None:
    """Erase a photo of your event: the original, its thumbnail, its faces and its matches.
    Guests stop seeing it at once."""
    event = get_managed_event(session=session, organizer=organizer, event_id=event_id)
    service.delete_photo(session=session, event=event, photo_id=photo_id)


@router.get("/events/{event_id}/photos", responses=errors(403, 404))
def list_photos(
    event_id: IdPath,
    organizer: CurrentOrganizer,
    session: SessionDep,
    status: Annotated[PhotoStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: OffsetQuery = 0,
) -> PhotoList:
    """The event's photos with their indexing status and, for failed ones, the reason."""
    get_managed_event(session=session, organizer=organizer, event_id=event_id)
    photos = service.list_photos(
        session=session, event_id=event_id, status=status, limit=limit, offset=offset
    )
    return PhotoList(
        photos=[
            PhotoOut(
                id=p.id,
                event_id=p.event_id,
                filename=p.filename,
                status=p.status,
                faces=p.faces_count,
                width=p.width,
                height=p.height,
                attempts=p.attempts,
                error={"code": p.error_code, "message": p.error_message or ""} if p.error_code else None,
                created_at=p.created_at,
                indexed_at=p.indexed_at,
                thumbnail_url=f"/api/photos/{p.id}/thumbnail",
                url=f"/api/photos/{p.id}/original",
            )
            for p in photos
        ]
    )


def _serve(
    request: Request, photo_id: int, user: object, session: SessionDep, *, thumbnail: bool
) -> Response:
    """The file from local storage, a redirect to a presigned URL of the bucket, or the
    bucket's object streamed through this node (STORAGE_PRESIGNED_URLS=false).

    A browser keeps it ``PHOTO_CACHE_SECONDS`` (minutes, not a day: a photo its viewer may no
    longer see, after "not me", a removal or a deletion, leaves the cache soon), then asks
    again: the file's key never changes under its URL, so it is the validator, and a photo
    still allowed costs an access check and a 304, not the file."""
    photo = service.photo_for_viewer(session=session, user=user, photo_id=photo_id)  # type: ignore[arg-type]
    key, media_type = service.served_file(photo, thumbnail=thumbnail)
    release_connection(session)  # read-only: the pool gets the connection back before the file
    seconds = get_settings().photo_cache_seconds
    etag = f'"{hashlib.sha256(key.encode()).hexdigest()[:32]}"'
    cache = {"Cache-Control": f"private, max-age={seconds}" if seconds else "private, no-cache", "ETag": etag}
    if etag in {
        tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")
    }:
        return Response(status_code=304, headers=cache)
    path = storage.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=cache)
    # The redirect is cached for less than the URL lives, so a browser reuses a valid URL.
    max_age = min(get_settings().storage_url_expire_seconds // 2, seconds)
    url = storage.presigned_url(key, media_type=media_type, max_age=seconds)
    if url is not None:
        return RedirectResponse(
            url, status_code=307, headers={"Cache-Control": f"private, max-age={max_age}"}
        )
    size = storage.size(key)
    if size is None:
        raise NotFound("The photo's file is missing from storage.", code="photo_not_found")
    return StreamingResponse(
        storage.chunks(key), media_type=media_type, headers={**cache, "Content-Length": str(size)}
    )


@router.get("/photos/{photo_id}/thumbnail", response_class=FileResponse, responses=_IMAGE | errors(404, 409))
def photo_thumbnail(request: Request, photo_id: IdPath, user: CurrentUser, session: SessionDep) -> Response:
    """A 480 px JPEG thumbnail, without EXIF. For the organizer and the guests matched in it."""
    return _serve(request, photo_id, user, session, thumbnail=True)


@router.get("/photos/{photo_id}/original", response_class=FileResponse, responses=_IMAGE | errors(404, 409))
def photo_original(request: Request, photo_id: IdPath, user: CurrentUser, session: SessionDep) -> Response:
    """The full photo, upright, with EXIF (GPS included) removed."""
    return _serve(request, photo_id, user, session, thumbnail=False)
