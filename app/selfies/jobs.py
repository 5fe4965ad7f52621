"""The selfie job: the face check, then the selfie's matches in all the guest's events.

Two committed steps under one lease. A checked face becomes ``matching`` and, in the same
transaction, the guest's only selfie: older selfies and their matches go. A refused face
becomes ``rejected`` with a reason the guest can act on, and its image is deleted. The
runner (``app.jobs.runner``) claims, renews, retries and commits; this module only decides.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import get_settings
from app.core.database import utcnow
from app.core.errors import AppError
from app.events import service as events_service
from app.faces import service as faces_service
from app.faces.providers import get_face_provider
from app.faces.providers.base import FaceProvider
from app.jobs.kinds import JobKind, Outcome, register
from app.selfies.models import Selfie, SelfieStatus


def _check(session: Session, selfie: Selfie, provider: FaceProvider) -> Outcome:
    key = selfie.image_key
    try:
        image = storage.load(key)
    except FileNotFoundError:
        return Outcome(
            {
                "status": SelfieStatus.failed,
                "error_code": "original_missing",
                "error_message": "The uploaded selfie is missing from storage; upload it again.",
            }
        )
    try:
        analysis = provider.analyze_selfie(image, strict=selfie.strict)
    except AppError as exc:  # the face check refused it: the reason is for the guest
        return Outcome(
            {
                "status": SelfieStatus.rejected,
                "error_code": exc.code,
                "error_message": exc.message,
                "checked_at": utcnow(),
            },
            after_commit=lambda: storage.delete(key),
        )
    signature = provider.selfie_signature(analysis, selfie_id=selfie.id, image=image)
    # This selfie replaces the guest's previous ones (indexed deletes, same transaction).
    faces_service.delete_user_matches(session=session, user_id=selfie.user_id, keep_selfie_id=selfie.id)
    older = list(
        session.scalars(select(Selfie).where(Selfie.user_id == selfie.user_id, Selfie.id < selfie.id))
    )
    for old in older:
        session.delete(old)
    storage.delete_after_commit(session, [old.image_key for old in older])
    faces_service.forget_selfies(session=session, selfies=[(o.provider, o.descriptor) for o in older])

    return Outcome(
        {
            "status": SelfieStatus.matching,
            "descriptor": signature,
            "provider": provider.name,
            "model": provider.model,
            "checked_at": utcnow(),
            "error_code": None,
            "error_message": None,
        },
        done=False,
    )


def handle(session: Session, selfie: Selfie) -> Outcome:
    provider = get_face_provider()
    if selfie.status == SelfieStatus.pending or selfie.descriptor is None or selfie.model != provider.model:
        return _check(session, selfie, provider)
    key = selfie.image_key
    faces_service.match_selfie(
        session=session,
        selfie_id=selfie.id,
        user_id=selfie.user_id,
        event_ids=events_service.member_event_ids(session=session, user_id=selfie.user_id),
        signature=selfie.descriptor,
        image=lambda: storage.load(key),
        provider=provider,
    )
    # The template is stored and matched: the image itself is no longer needed (the guest's
    # state stays "ready"; a new selfie replaces it).
    keep = get_settings().selfie_keep_image
    return Outcome(
        {"status": SelfieStatus.ready, "matched_at": utcnow(), "error_code": None, "error_message": None},
        after_commit=None if keep else lambda: storage.delete(key),
    )


def on_failed(selfie: Selfie) -> Callable[[], None]:
    """A selfie that could not be checked keeps its row (the guest sees why), not its image."""
    key = selfie.image_key
    return lambda: storage.delete(key)


SELFIE_JOB = register(
    JobKind(
        name="selfie",
        model=Selfie,
        todo=(SelfieStatus.pending, SelfieStatus.matching),
        failed_status=SelfieStatus.failed,
        handle=handle,
        priority=10,  # a guest is waiting
        on_failed=on_failed,
    )
)
