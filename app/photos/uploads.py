"""Direct uploads of event photos to the bucket: the web node signs and records, the browser
sends the bytes to the bucket (presigned PUT, or multipart parts), then asks to complete.

1. ``sign_uploads``: per file described (name, size, type, SHA-256), ``duplicate`` when the
   event already has those bytes, ``rejected`` for a file the form upload would refuse too
   (type, size), otherwise a photo row in ``uploading`` with its key and presigned URLs. A
   file already signed but not completed (another browser, an interrupted batch) is signed
   again under the same row and key: the last copy sent wins, and they are the same bytes.
2. ``complete_upload``: assembles the parts (multipart), checks the object is in the bucket
   with the declared size (HEAD), and moves the photo to ``pending``: the photo job reads it,
   checks its hash, format and pixels (``photos/jobs.py``), and indexes it.
3. ``sweep_abandoned_uploads`` (the daily sweep): rows left ``uploading`` for a day go, with
   whatever reached the bucket, and so do multipart uploads never completed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.core import storage
from app.core.config import get_settings
from app.core.database import utcnow
from app.core.errors import AppError, Conflict, NotFound, UnsupportedMediaType
from app.core.storage import direct
from app.core.storage.direct import DirectUpload
from app.events.models import Event
from app.faces.images import FILE_EXTENSIONS
from app.photos import service
from app.photos.models import Photo, PhotoStatus
from app.photos.schemas import UploadFileIn, UploadPartOut, UploadSlot

#: The media types a browser may declare, and the format each is stored as.
DIRECT_TYPES = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}
#: Photos of one event signed and not completed at once (a batch signs in slices as it goes).
MAX_UPLOADING_PER_EVENT = 5000
#: An upload not completed within this is abandoned: the daily sweep erases it.
ABANDONED_AFTER = timedelta(days=1)


def _unavailable() -> Conflict:
    return Conflict(
        "This server stores photos itself: send them to POST /api/events/{id}/photos.",
        code="direct_upload_unavailable",
    )


def direct_uploads_available() -> bool:
    """Whether browsers may send photos straight to the bucket (the dashboard asks)."""
    return direct.target() is not None


def require_direct_uploads() -> None:
    """409 ``direct_upload_unavailable`` unless the storage is a bucket clients may reach."""
    if direct.target() is None:
        raise _unavailable()


def _rejected(name: str, exc: AppError) -> UploadSlot:
    return UploadSlot(name=name, status="rejected", error={"code": exc.code, "message": exc.message})


def _slot(name: str, photo: Photo, upload: DirectUpload) -> UploadSlot:
    return UploadSlot(
        name=name,
        status="upload",
        photo_id=photo.id,
        key=photo.original_key,
        url=upload.url,
        headers={"Content-Type": _MEDIA_TYPES[photo.original_format]},
        upload_id=upload.upload_id,
        part_bytes=upload.part_bytes,
        parts=[UploadPartOut(number=p.number, url=p.url) for p in upload.parts],
        expires_in=direct.URL_EXPIRE_SECONDS,
    )


def _uploading_count(session: Session, event_id: int) -> int:
    return len(
        session.scalars(
            select(Photo.id)
            .where(Photo.event_id == event_id, Photo.status == PhotoStatus.uploading)
            .limit(MAX_UPLOADING_PER_EVENT + 1)
        ).all()
    )


def _check(file: UploadFileIn) -> str:
    """The format the described file is stored as; raises what the form upload would."""
    settings = get_settings()
    fmt = DIRECT_TYPES.get(file.content_type.split(";")[0].strip().lower())
    if fmt is None:
        raise UnsupportedMediaType("Upload a JPEG, PNG, WebP or HEIC photo.", code="unsupported_format")
    if file.size > settings.photo_max_bytes:
        raise service.file_too_large(settings)
    return fmt


def sign_uploads(
    *, session: Session, event: Event, uploader: User, files: Sequence[UploadFileIn]
) -> list[UploadSlot]:
    """Per file, in order: ``duplicate``, ``rejected`` or ``upload`` with presigned URLs
    (module docstring). 409 ``direct_upload_unavailable`` without a reachable bucket; 429
    ``too_many_uploads`` past ``MAX_UPLOADING_PER_EVENT`` signed and not completed."""
    require_direct_uploads()
    if _uploading_count(session, event.id) + len(files) > MAX_UPLOADING_PER_EVENT:
        raise AppError(
            f"At most {MAX_UPLOADING_PER_EVENT} photos may wait for their upload to complete;"
            " complete some first.",
            code="too_many_uploads",
            status_code=429,
            headers={"Retry-After": "30"},
        )
    answers: list[UploadSlot] = []
    signed: dict[str, int] = {}  # hash -> photo id, within this request
    for file in files:
        name = service.clean_filename(file.name)
        content_hash = file.sha256.lower()
        try:
            fmt = _check(file)
        except AppError as exc:
            answers.append(_rejected(name, exc))
            continue
        if content_hash in signed:
            answers.append(UploadSlot(name=name, status="duplicate", photo_id=signed[content_hash]))
            continue
        photo = service.find_duplicate(session=session, event_id=event.id, content_hash=content_hash)
        if photo is None:
            photo = service.insert_unique(
                session,
                Photo(
                    event_id=event.id,
                    uploaded_by=uploader.id,
                    filename=name,
                    original_key=storage.new_key(f"photos/{event.id}", FILE_EXTENSIONS[fmt]),
                    original_format=fmt,
                    size_bytes=file.size,
                    width=0,
                    height=0,
                    content_hash=content_hash,
                    status=PhotoStatus.uploading,
                ),
            ) or service.find_duplicate(session=session, event_id=event.id, content_hash=content_hash)
        if photo is None:  # inserted and gone at once (failed meanwhile): the client retries
            raise Conflict("The photo changed meanwhile; sign it again.", code="conflict")
        signed[content_hash] = photo.id
        if photo.status != PhotoStatus.uploading:
            answers.append(UploadSlot(name=name, status="duplicate", photo_id=photo.id))
            continue
        upload = direct.start(
            photo.original_key, size=photo.size_bytes, content_type=_MEDIA_TYPES[photo.original_format]
        )
        answers.append(_slot(name, photo, upload))
    return answers


def complete_upload(
    *,
    session: Session,
    event: Event,
    photo_id: int,
    upload_id: str | None,
    parts: Sequence[tuple[int, str]],
) -> Photo:
    """The photo's file is in the bucket: it goes to the photo job. Idempotent (a photo
    already completed is answered as it is). 404 ``photo_not_found``; 409
    ``upload_incomplete`` (the bucket refused to assemble the parts), ``upload_missing`` (no
    object), ``upload_size_mismatch`` (not the size declared: the object is deleted, send it
    again)."""
    photo = session.get(Photo, photo_id)
    if photo is None or photo.event_id != event.id:
        raise NotFound("No such photo in this event.", code="photo_not_found")
    if photo.status != PhotoStatus.uploading:
        return photo
    require_direct_uploads()
    if upload_id is not None:
        if not parts:
            raise Conflict("Send the ETag of each part.", code="upload_incomplete")
        try:
            direct.complete(photo.original_key, upload_id=upload_id, etags=parts)
        except direct.UploadFailed as exc:
            raise Conflict(
                f"The bucket could not assemble the parts ({exc}); send them again.", code="upload_incomplete"
            ) from None
    size = storage.size(photo.original_key)
    if size is None:
        raise Conflict("The file is not in the bucket yet: send it, then complete.", code="upload_missing")
    if size != photo.size_bytes:
        storage.delete(photo.original_key)
        raise Conflict(
            f"The bucket holds {size} bytes, not the {photo.size_bytes} declared; send the file again.",
            code="upload_size_mismatch",
        )
    service.queue_uploaded(session, photo)
    return photo


def sweep_abandoned_uploads(*, session: Session, older_than: timedelta = ABANDONED_AFTER) -> int:
    """Erase the photos left ``uploading`` for longer than ``older_than`` (their objects after
    the commit) and abort the multipart uploads as old; how many photos."""
    cutoff = utcnow() - older_than
    stale = list(
        session.scalars(
            select(Photo)
            .where(Photo.status == PhotoStatus.uploading, Photo.created_at < cutoff)
            .limit(10_000)
        )
    )
    for photo in stale:
        session.delete(photo)
    session.flush()
    storage.delete_after_commit(session, [p.original_key for p in stale])
    direct.abort_stale_multipart_uploads(cutoff)
    return len(stale)
