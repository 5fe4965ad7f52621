"""Selfies: accepting an upload, the face check and matching (worker side), status and
the guest's matched photos. All selfie queries live here."""

from __future__ import annotations

import logging

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import Settings, get_settings
from app.core.database import session_scope, utcnow
from app.core.errors import AppError, PayloadTooLarge, ServiceUnavailable
from app.events.models import EventMembership
from app.faces import service as faces_service
from app.faces.images import FILE_EXTENSIONS, probe_image
from app.faces.models import FaceMatch
from app.faces.provider import FaceProvider, ProviderUnavailable
from app.jobs import queue
from app.selfies.models import Selfie, SelfieStatus
from app.selfies.schemas import MatchedPhoto, PublicStatus, SelfieState

log = logging.getLogger("app.selfies")

PUBLIC_STATUS: dict[str, PublicStatus] = {
    SelfieStatus.pending: "processing",
    SelfieStatus.matching: "processing",
    SelfieStatus.ready: "ready",
    SelfieStatus.rejected: "failed",
    SelfieStatus.failed: "failed",
}


def check_upload(data: bytes, settings: Settings) -> str:
    """Cheap checks done by the web process (no face model): size, format, pixels."""
    if len(data) > settings.selfie_max_bytes:
        raise PayloadTooLarge(
            f"The selfie is larger than {settings.selfie_max_bytes // (1024 * 1024)} MiB.",
            code="image_too_large",
        )
    return probe_image(data, max_pixels=settings.max_image_pixels).format


def create_selfie(
    *, session: Session, user_id: int, data: bytes, image_format: str, settings: Settings
) -> Selfie:
    """Queue a selfie for the face check, unless the face workers are saturated (503)."""
    pending = (
        session.scalar(select(func.count()).select_from(Selfie).where(Selfie.status == SelfieStatus.pending))
        or 0
    )
    if pending >= settings.selfie_pending_limit:
        raise ServiceUnavailable(
            "Many selfies are being checked right now; try again in a few seconds.",
            code="face_workers_busy",
            retry_after=2,
        )
    key = storage.new_key(f"selfies/{user_id}", FILE_EXTENSIONS[image_format])
    storage.save(key, data)
    selfie = Selfie(
        user_id=user_id,
        image_key=key,
        strict=settings.selfie_validation_strict,
        status=SelfieStatus.pending,
    )
    session.add(selfie)
    session.flush()
    return selfie


def discard_selfie(*, session: Session, selfie_id: int) -> None:
    """Remove a refused selfie and its file (the guest got the reason in the response)."""
    selfie = session.get(Selfie, selfie_id)
    if selfie is not None:
        storage.delete(selfie.image_key)
        session.delete(selfie)


def get_selfie(*, session: Session, selfie_id: int) -> Selfie | None:
    return session.get(Selfie, selfie_id)


def current_selfie(*, session: Session, user_id: int) -> Selfie | None:
    return session.scalar(select(Selfie).where(Selfie.user_id == user_id).order_by(Selfie.id.desc()).limit(1))


def selfie_state(*, session: Session, selfie: Selfie) -> SelfieState:
    matches = session.scalar(
        select(func.count()).select_from(FaceMatch).where(FaceMatch.selfie_id == selfie.id)
    )
    reason = None
    if selfie.status in (SelfieStatus.rejected, SelfieStatus.failed) or selfie.error_code:
        # While processing, a reason says why it takes long (e.g. the provider is down).
        reason = {"code": selfie.error_code or "failed", "message": selfie.error_message or ""}
    return SelfieState(
        selfie_id=selfie.id,
        status=PUBLIC_STATUS[selfie.status],
        reason=reason,
        matches=matches or 0,
        uploaded_at=selfie.created_at,
        matched_at=selfie.matched_at,
    )


def my_photos(*, session: Session, user_id: int, event_id: int | None) -> list[MatchedPhoto]:
    """Photos the user's current selfie matched, in events they belong to, best first."""
    stmt = (
        select(FaceMatch.photo_id, FaceMatch.event_id, FaceMatch.distance)
        .join(
            EventMembership,
            (EventMembership.user_id == FaceMatch.user_id) & (EventMembership.event_id == FaceMatch.event_id),
        )
        .where(FaceMatch.user_id == user_id)
        .order_by(FaceMatch.distance, FaceMatch.photo_id)
    )
    if event_id is not None:
        stmt = stmt.where(FaceMatch.event_id == event_id)
    return [
        MatchedPhoto(
            id=r.photo_id,
            event_id=r.event_id,
            thumbnail_url=f"/api/photos/{r.photo_id}/thumbnail",
            url=f"/api/photos/{r.photo_id}/original",
            distance=round(r.distance, 4),
        )
        for r in session.execute(stmt)
    ]


def rematch(*, session: Session, user_id: int) -> None:
    """Recompute the user's matches (e.g. after joining an event) in the background."""
    selfie = current_selfie(session=session, user_id=user_id)
    if selfie is not None and selfie.descriptor is not None and selfie.status == SelfieStatus.ready:
        selfie.status = SelfieStatus.matching
        selfie.attempts = 0
        session.flush()


# --- worker side ---------------------------------------------------------------------


def _accept(
    session: Session, selfie: Selfie, worker_id: str, signature: bytes, provider: FaceProvider
) -> bool:
    """Store the signature and make this selfie the user's only one (indexed deletes)."""
    newer = session.scalar(
        select(Selfie.id).where(
            Selfie.user_id == selfie.user_id,
            Selfie.id > selfie.id,
            Selfie.status.in_([SelfieStatus.matching, SelfieStatus.ready]),
        )
    )
    if newer is not None:  # a later selfie already replaced this one
        session.execute(delete(Selfie).where(queue.owned(Selfie, selfie.id, worker_id)))
        session.commit()
        storage.delete(selfie.image_key)
        provider.forget_selfie(signature)
        return False
    ok = queue.fenced_update(
        session,
        Selfie,
        selfie.id,
        worker_id,
        status=SelfieStatus.matching,
        descriptor=signature,
        provider=provider.name,
        checked_at=utcnow(),
        error_code=None,
        error_message=None,
    )
    if not ok:
        session.rollback()
        return False
    faces_service.delete_user_matches(session=session, user_id=selfie.user_id, keep_selfie_id=selfie.id)
    older = list(
        session.scalars(select(Selfie).where(Selfie.user_id == selfie.user_id, Selfie.id < selfie.id))
    )
    for old in older:
        session.delete(old)
    session.commit()
    for old in older:
        storage.delete(old.image_key)
        if old.descriptor is not None and old.provider == provider.name:
            provider.forget_selfie(old.descriptor)
    return True


def process_next_selfie(*, worker_id: str, provider: FaceProvider, settings: Settings | None = None) -> bool:
    """Claim one selfie: check its face (if not done yet), then compute its matches."""
    settings = settings or get_settings()
    with session_scope() as session:
        selfie = queue.claim_next(
            session,
            Selfie,
            todo=(SelfieStatus.pending, SelfieStatus.matching),
            worker_id=worker_id,
            settings=settings,
        )
        if selfie is None:
            return False
        selfie_id, status = selfie.id, selfie.status
        if failure := queue.gave_up(selfie, settings):
            queue.finish(session, Selfie, selfie_id, worker_id, status=SelfieStatus.failed, **failure)
            return True
        image_key = selfie.image_key
        try:
            signature = selfie.descriptor
            if signature is None or selfie.provider != provider.name:
                image = storage.load(image_key)
                analysis = provider.analyze_selfie(image, strict=selfie.strict)
                signature = provider.selfie_signature(analysis, selfie_id=selfie_id, image=image)
                if not _accept(session, selfie, worker_id, signature, provider):
                    return True
            faces_service.match_selfie(
                session=session,
                selfie_id=selfie_id,
                user_id=selfie.user_id,
                signature=signature,
                image=lambda: storage.load(image_key),
                provider=provider,
            )
            queue.finish(
                session,
                Selfie,
                selfie_id,
                worker_id,
                status=SelfieStatus.ready,
                matched_at=utcnow(),
                error_code=None,
                error_message=None,
            )
        except ProviderUnavailable as exc:
            log.warning("selfie %s postponed: %s", selfie_id, exc.message)
            queue.postpone(
                session,
                Selfie,
                selfie_id,
                worker_id,
                status=status,
                error_code="provider_unavailable",
                message=f"The face service is unavailable; your selfie will be processed automatically. "
                f"({exc.message})",
                delay=exc.retry_after,
            )
        except AppError as exc:  # the face check refused it: the reason is for the guest
            session.rollback()
            queue.finish(
                session,
                Selfie,
                selfie_id,
                worker_id,
                status=SelfieStatus.rejected,
                error_code=exc.code,
                error_message=exc.message,
                checked_at=utcnow(),
            )
        except FileNotFoundError:
            session.rollback()
            queue.finish(
                session,
                Selfie,
                selfie_id,
                worker_id,
                status=SelfieStatus.failed,
                error_code="original_missing",
                error_message="The uploaded selfie is missing from storage.",
            )
        except Exception as exc:
            log.exception("selfie %s failed", selfie_id)
            queue.crashed(
                session,
                Selfie,
                selfie,
                selfie_id,
                worker_id,
                exc=exc,
                settings=settings,
                retry_status=status,
                failed_status=SelfieStatus.failed,
            )
    return True
