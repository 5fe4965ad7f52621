"""A guest's data, downloadable: ``GET /api/me/export`` (``me.json`` and the photos they are
matched in) and ``GET /api/my-photos/download`` (the photos alone). Zips are streamed with
zipstream-ng: nothing is built in memory or on disk, and the size is known in advance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from zipstream import ZipStream

from app.accounts import links
from app.accounts.models import User
from app.core import storage
from app.events.models import Event, EventMembership
from app.faces import service as faces_service
from app.mail import service as mail_service
from app.notices import service as notices_service
from app.photos.models import Photo
from app.selfies.models import SelfieChange
from app.selfies.service import PUBLIC_STATUS, latest_selfie, my_photos


@dataclass(frozen=True, slots=True)
class ZipEntry:
    name: str  # in the zip
    key: str  # in storage
    size: int


def photo_files(*, session: Session, user_id: int, event_id: int | None) -> list[ZipEntry]:
    """The photos the guest is matched in, as zip entries: their served originals (upright,
    without EXIF/GPS), one folder per event; files missing from storage are left out."""
    matched = [p.id for p in my_photos(session=session, user_id=user_id, event_id=event_id)]
    if not matched:
        return []
    rows = session.execute(
        select(Photo.id, Photo.served_key, Photo.filename, Event.name, Event.id.label("event_id"))
        .join(Event, Event.id == Photo.event_id)
        .where(Photo.id.in_(matched), Photo.served_key.is_not(None))
        .order_by(Photo.event_id, Photo.id)
    )
    files = []
    for r in rows:
        folder = f"{r.event_id} {_safe_name(r.name)}"
        extension = r.served_key.rsplit(".", 1)[-1]
        size = storage.size(r.served_key)
        if size is not None:
            name = f"{folder}/{r.id} {_safe_name(r.filename.rsplit('.', 1)[0])}.{extension}"
            files.append(ZipEntry(name, r.served_key, size))
    return files


def _safe_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in " -_" else "_" for c in text).strip()
    return cleaned[:60] or "photo"


def export_record(*, session: Session, user: User) -> dict[str, Any]:
    """Everything the service keeps about a guest, as data (``me.json`` of the export)."""
    uid = user.id
    selfie = latest_selfie(session=session, user_id=uid)
    memberships = session.execute(
        select(Event.id, Event.name, Event.code, EventMembership.joined_at, EventMembership.notify)
        .join(EventMembership, EventMembership.event_id == Event.id)
        .where(EventMembership.user_id == uid)
        .order_by(EventMembership.joined_at)
    )
    changes = session.scalars(
        select(SelfieChange.created_at).where(SelfieChange.user_id == uid).order_by(SelfieChange.id)
    )
    return {
        "account": {
            "id": uid,
            "username": user.username,
            "email": user.email,
            "display_name": user.display_name,
            "role": user.role,
            "created_at": user.created_at,
            "last_login_at": user.last_login_at,
            "email_verified_at": user.email_verified_at,
            "language": user.language,
            "notify_photos": user.notify_photos,
        },
        "consent": {"face_processing_accepted_at": user.consent_at, "policy_version": user.consent_version},
        "events": [
            {"id": r.id, "name": r.name, "code": r.code, "joined_at": r.joined_at, "notify": r.notify}
            for r in memberships
        ],
        "selfie": None
        if selfie is None
        else {
            "status": PUBLIC_STATUS[selfie.status],
            "uploaded_at": selfie.created_at,
            "checked_at": selfie.checked_at,
            "face_template_stored": selfie.descriptor is not None,
            "provider": selfie.provider,
        },
        "selfie_changes": list(changes),
        "matched_photos": [p.model_dump() for p in my_photos(session=session, user_id=uid, event_id=None)],
        "not_me": faces_service.not_me_photo_ids(session=session, user_id=uid),
        # Links mailed to the account (what for, when; never the token), the messages of the
        # outbox (no bodies), and the photos already told about per event.
        "mailed_links": links.user_tokens(session=session, user_id=uid),
        "mails": mail_service.user_messages(session=session, user_id=uid),
        "notifications": notices_service.user_record(session=session, user_id=uid),
    }


def zip_of(files: list[ZipEntry], record: dict[str, Any] | None = None) -> ZipStream:
    """A streamed zip of ``files`` (and ``me.json`` when a ``record`` is given). Photos are
    stored, not compressed: JPEGs do not shrink. Each file is read from storage only when the
    zip reaches it."""
    archive = ZipStream(sized=True)
    if record is not None:
        archive.add(json.dumps(record, indent=2, default=str, ensure_ascii=False).encode(), "me.json")
    for entry in files:
        path = storage.local_path(entry.key)
        if path is not None:
            archive.add_path(str(path), entry.name)
        else:
            archive.add(storage.chunks(entry.key), entry.name, size=entry.size)
    return archive
