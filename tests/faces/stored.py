"""Devset faces stored as an event's photos, and the photos a selfie matches: as the local
provider finds them through the event's gallery (``matched``) and by exact search over every
devset face (``exact``)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from sqlalchemy.orm import Session

from app.faces import search
from app.faces import service as faces_service
from app.faces.matching import to_blob
from app.faces.providers import get_face_provider
from app.faces.providers.base import DetectedFace, FaceBox
from app.faces.providers.local import LocalProvider
from app.photos.models import Photo, PhotoStatus
from tools.match_scoring import Indexed


def add_photo(session: Session, event_id: int, uploader: int, n: int) -> int:
    photo = Photo(
        event_id=event_id,
        uploaded_by=uploader,
        filename=f"{n}.jpg",
        original_key=f"photos/{event_id}/{n}.jpg",
        original_format="JPEG",
        size_bytes=10,
        width=1,
        height=1,
        status=PhotoStatus.indexed,
    )
    session.add(photo)
    session.flush()
    return photo.id


def store(session: Session, event_id: int, uploader: int, indexed: Indexed, rows: range) -> dict[int, int]:
    """The devset faces ``rows`` stored as photos of the event (one photo per devset photo, as
    the engine found them); devset photo id -> our photo id."""
    provider = get_face_provider()
    photos: dict[int, int] = {}
    for row in rows:
        devset_photo = int(indexed.gallery.photo_ids[row])
        if devset_photo not in photos:
            photos[devset_photo] = add_photo(session, event_id, uploader, devset_photo)
        face = DetectedFace(box=FaceBox(0, 0, 10, 10), descriptor=indexed.gallery.vectors[row])
        faces_service.store_faces(
            session=session, photo_id=photos[devset_photo], event_id=event_id, faces=[face], provider=provider
        )
    session.commit()
    return photos


def split(indexed: Indexed, near: int) -> int:
    """The first face of a devset photo at or after row ``near`` (a photo is stored whole)."""
    ids = indexed.gallery.photo_ids
    return next(i for i in range(near, len(ids)) if i == 0 or ids[i] != ids[i - 1])


def matched(session: Session, event_id: int, probe: np.ndarray, not_me: Collection[int] = ()) -> set[int]:
    """The photos the selfie ``probe`` matches as the local provider finds them."""
    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    found = provider.find_photos(
        signature=to_blob(probe),
        image=lambda: b"",
        event_ids=[event_id],
        faces=search.EventFaces(session=session, model=provider.model),
        exclude_photos=not_me,
    )
    return {m.photo_id for m in found}


def exact(
    indexed: Indexed, probe: np.ndarray, photos: dict[int, int], not_me: Collection[int] = ()
) -> set[int]:
    """The same, by exact search over every devset face."""
    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    ours = {devset for devset, photo in photos.items() if photo in not_me}
    found = indexed.gallery.match(
        probe, threshold=provider.threshold, expand=provider.expand, guard=provider.guard, exclude_photos=ours
    )
    return {photos[photo] for _face, photo, _d in found}
