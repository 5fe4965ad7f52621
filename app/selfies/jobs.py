"""The selfie job: the face check, then the selfie's matches in all the guest's events.

Two committed steps under one lease. A checked face becomes ``matching`` and, in the same
transaction, the guest's only selfie: older selfies and their matches go. A refused face
becomes ``rejected`` with a reason the guest can act on, and its image is deleted. The
runner (``app.jobs.runner``) claims, renews, retries and commits; this module only decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import utcnow
from app.core.errors import AppError
from app.events import service as events_service
from app.events.models import EventMembership
from app.faces import service as faces_service
from app.faces.images import probe_selfie
from app.faces.providers import get_face_provider
from app.faces.providers.base import FaceProvider
from app.jobs.kinds import JobKind, Outcome, register
from app.selfies import changes
from app.selfies.models import Selfie, SelfieStatus


def _rejected(exc: AppError, key: str) -> Outcome:
    return Outcome(
        {
            "status": SelfieStatus.rejected,
            "error_code": exc.code,
            "error_message": exc.message,
            "checked_at": utcnow(),
        },
        after_commit=lambda: storage.delete(key),
    )


def _check_limit(session: Session, selfie: Selfie, settings: Settings) -> bool:
    """Whether this selfie replaces an accepted one; ``ChangesExhausted`` past the limit."""
    replacing = changes.has_accepted(session, selfie.user_id, before=selfie.id)
    changes.check_allowed(session=session, user_id=selfie.user_id, accepted=replacing, settings=settings)
    return replacing


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
    settings = get_settings()
    new = selfie.status == SelfieStatus.pending  # not a re-description after a model change
    try:
        # Again here, for selfies queued before the bounds were lowered: a cheap read of the
        # header, before any costly decoding.
        probe_selfie(
            image, max_pixels=settings.selfie_max_pixels, max_decode_pixels=settings.selfie_max_decode_pixels
        )
        analysis = provider.analyze_selfie(image, strict=selfie.strict)
        if new:
            _check_limit(session, selfie, settings)  # before the provider may keep a copy
        signature = provider.selfie_signature(analysis, selfie_id=selfie.id, image=image)
    except AppError as exc:  # the face check refused it: the reason is for the guest
        return _rejected(exc, key)
    if new:
        # Checked again and counted under the guest's lock: the limit may have been used up
        # meanwhile (another selfie accepted, a deletion).
        changes.lock_guest(session, selfie.user_id)
        try:
            if _check_limit(session, selfie, settings):
                changes.record(session, selfie.user_id)
        except changes.ChangesExhausted as exc:
            faces_service.forget_selfies(session=session, selfies=[(provider.name, signature)])
            return _rejected(exc, key)
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


def guest_event() -> Any:
    """A selfie's group in the queue: the first event its guest joined (their own group for
    a guest of none). Guests of an event flooded with selfies, by a crowd or by accounts made
    for it, wait behind each other, not the guests of every other event."""
    first = (
        select(func.min(EventMembership.event_id))
        .where(EventMembership.user_id == Selfie.user_id)
        .scalar_subquery()
    )
    return func.coalesce(first, -Selfie.user_id)


SELFIE_JOB = register(
    JobKind(
        name="selfie",
        model=Selfie,
        todo=(SelfieStatus.pending, SelfieStatus.matching),
        failed_status=SelfieStatus.failed,
        handle=handle,
        priority=10,  # a guest is waiting
        group_by=guest_event,  # one event's crowd (or spam) does not hold up the others
        on_failed=on_failed,
    )
)
