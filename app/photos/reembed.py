"""Switching the recognizer on a live service: an event's faces described again by the new
model, a durable job per event (``face_reembeds``), while matching goes on.

When the face workers start with a model (``FACE_RECOGNIZER``) that some event's faces were
not made with, :func:`queue_reembeds` queues one job per such event. The job takes the
event's photos in id order, a committed batch at a time: each photo is decoded and indexed
again, and its new faces are stored beside the old ones (photos indexed meanwhile by the photo
job already have them). Matching only ever compares one model: selfies checked since the
switch search the new faces, which grow batch by batch. The last step moves each match to the
new face of the same photo (the best overlap of the boxes, so guests keep their photos),
deletes the old faces and re-matches the guests whose template is of the new model.

Selfies: a template cannot be made again without its image, and images are deleted once the
template is stored (``SELFIE_KEEP_IMAGE=false``). Guests whose template is of an older model
keep the photos they had and are asked for a new selfie (``GET /api/selfie``:
``needs_new_selfie``); with ``SELFIE_KEEP_IMAGE=true`` their selfie is checked again
automatically.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import get_settings
from app.core.database import utcnow
from app.events.models import Event
from app.faces import service as faces_service
from app.faces.images import load_rgb
from app.faces.models import FaceReembed
from app.faces.providers import get_face_provider
from app.faces.providers.base import LOCAL_PROVIDER, FaceProvider
from app.jobs import wakeup
from app.jobs.kinds import Outcome, register, status_kind
from app.jobs.models import JobStatus
from app.photos import service as photos_service
from app.photos.models import Photo, PhotoStatus
from app.selfies import service as selfies_service
from app.selfies.models import Selfie, SelfieStatus

#: Photos described again per committed step.
BATCH = 10


def queue_reembeds(*, session: Session, model: str) -> list[int]:
    """A re-embedding job for each event with local faces of another model than ``model``
    (none twice); selfies of another model are checked again when their image is kept. The
    events queued."""
    stale = faces_service.events_of_other_models(session=session, model=model)
    running = select(FaceReembed.event_id).where(
        FaceReembed.model == model, FaceReembed.status.in_(JobStatus.todo())
    )
    events = list(
        session.scalars(
            select(Event.id)
            .where(Event.id.in_(stale), Event.id.not_in(running), Event.deleting_at.is_(None))
            .order_by(Event.id)
        )
    )
    for event_id in events:
        total = photos_service.count_photos(session=session, event_id=event_id)
        session.add(FaceReembed(event_id=event_id, model=model, photos_total=total, status=JobStatus.pending))
    if get_settings().selfie_keep_image:
        session.execute(
            update(Selfie)
            .where(
                Selfie.provider == LOCAL_PROVIDER, Selfie.model != model, Selfie.status == SelfieStatus.ready
            )
            .values(status=SelfieStatus.matching, attempts=0)
        )
    session.flush()
    wakeup.notify_on_commit(session)
    return events


def _describe_again(session: Session, photo: Photo, provider: FaceProvider) -> None:
    if faces_service.has_faces(session=session, photo_id=photo.id, model=provider.model):
        return  # indexed by the photo job since the switch
    try:
        img = load_rgb(storage.load(photo.original_key), max_pixels=get_settings().max_image_pixels)
    except FileNotFoundError:
        return  # the photo job reports it; nothing to describe
    faces = provider.index_image(img, event_id=photo.event_id)
    faces_service.store_faces(
        session=session, photo_id=photo.id, event_id=photo.event_id, faces=faces, provider=provider
    )


def handle(session: Session, job: FaceReembed) -> Outcome:
    provider = get_face_provider()
    if job.model != provider.model:  # the recognizer changed again: a newer job takes over
        return Outcome({"status": JobStatus.superseded, "finished_at": utcnow()})
    batch = list(
        session.scalars(
            select(Photo)
            .where(Photo.event_id == job.event_id, Photo.id > job.last_photo_id)
            .order_by(Photo.id)
            .limit(BATCH)
        )
    )
    if batch:
        for photo in batch:
            if photo.status == PhotoStatus.indexed:
                _describe_again(session, photo, provider)
        total = photos_service.count_photos(session=session, event_id=job.event_id)
        return Outcome(
            {
                "photos_done": job.photos_done + len(batch),
                "photos_total": max(total, job.photos_done + len(batch)),
                "last_photo_id": batch[-1].id,
            },
            done=False,
        )
    faces_service.move_to_model(session=session, event_id=job.event_id, model=provider.model)
    photos_service.recount_faces(session=session, event_id=job.event_id)
    guests = selfies_service.event_guest_selfies(session=session, event_id=job.event_id, model=provider.model)
    for user_id in sorted(set(guests.user_ids.tolist())):
        selfies_service.rematch(session=session, user_id=user_id)
    return Outcome({"status": JobStatus.done, "finished_at": utcnow()})


# After new photos: guests wait on those first.
REEMBED_JOB = register(status_kind(name="face-reembed", model=FaceReembed, handle=handle, priority=25))
