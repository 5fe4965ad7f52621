"""Claiming, renewing, finishing and retrying leased job rows.

A worker claims one row at a time: a cheap unlocked read finds a candidate, then one
UPDATE takes it (on PostgreSQL through ``FOR UPDATE SKIP LOCKED``, so workers on several
machines never take the same row; SQLite serialises writers anyway). The claim sets a
lease; a worker that dies (kill -9) simply stops renewing it and the row becomes
claimable again when it expires. Every write a worker makes about a job is *fenced* by
``lease_owner``: a worker that lost its lease cannot overwrite the new owner's work.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.database import utcnow
from app.jobs.models import LeasedJob

J = TypeVar("J", bound=LeasedJob)


def _claimable(model: Any, todo: tuple[str, ...]) -> Any:
    now = utcnow()
    return and_(
        model.status.in_(todo),
        or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
        or_(model.available_at.is_(None), model.available_at <= now),
    )


def claim(
    session: Session,
    model: type[J],
    *,
    todo: tuple[str, ...],
    worker_id: str,
    lease_seconds: float,
    set_status: str | None = None,
) -> int | None:
    """Take the oldest claimable row of ``model``; its id, or None. Commits."""
    m: Any = model
    if session.scalar(select(m.id).where(_claimable(m, todo)).limit(1)) is None:
        session.rollback()
        return None
    candidate = (
        select(m.id)
        .where(_claimable(m, todo))
        .order_by(m.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    values: dict[str, Any] = {
        "lease_owner": worker_id,
        "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds),
        "attempts": m.attempts + 1,
    }
    if set_status:
        values["status"] = set_status
    stmt = (
        update(m)
        .where(m.id == candidate)
        .values(**values)
        .returning(m.id)
        .execution_options(synchronize_session=False)
    )
    job_id = session.execute(stmt).scalar_one_or_none()
    session.commit()
    return job_id


def owned(model: Any, job_id: int, worker_id: str) -> Any:
    """The fence: the row is still this worker's."""
    return and_(model.id == job_id, model.lease_owner == worker_id)


def fenced_update(session: Session, model: Any, job_id: int, worker_id: str, **values: Any) -> bool:
    """Update the job only if this worker still holds it; False if the lease was lost."""
    stmt = (
        update(model)
        .where(owned(model, job_id, worker_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def retry_later(
    session: Session,
    model: Any,
    job_id: int,
    worker_id: str,
    *,
    status: str,
    error_code: str,
    error_message: str,
    attempts: int,
) -> bool:
    """Give the job back for a later attempt (exponential backoff). Commits."""
    delay = min(300.0, 2.0**attempts)
    ok = fenced_update(
        session,
        model,
        job_id,
        worker_id,
        status=status,
        lease_owner=None,
        lease_expires_at=None,
        available_at=utcnow() + timedelta(seconds=delay),
        error_code=error_code,
        error_message=error_message[:2000],
    )
    session.commit()
    return ok


def postpone(
    session: Session,
    model: Any,
    job_id: int,
    worker_id: str,
    *,
    status: str,
    error_code: str,
    message: str,
    delay: float,
) -> bool:
    """Give the job back untouched for later (its provider is unavailable): the attempt
    it just took is handed back, so a long outage never turns into a failure. Commits."""
    session.rollback()
    ok = fenced_update(
        session,
        model,
        job_id,
        worker_id,
        status=status,
        attempts=model.attempts - 1,
        lease_owner=None,
        lease_expires_at=None,
        available_at=utcnow() + timedelta(seconds=delay),
        error_code=error_code,
        error_message=message[:2000],
    )
    session.commit()
    return ok


def release_values() -> dict[str, Any]:
    """Columns that end a lease, to merge into a job's final fenced update."""
    return {"lease_owner": None, "lease_expires_at": None, "available_at": None}


def claim_next(
    session: Session,
    model: type[J],
    *,
    todo: tuple[str, ...],
    worker_id: str,
    settings: Settings,
    set_status: str | None = None,
) -> J | None:
    """Claim and load the next job of ``model``, or None when there is none."""
    job_id = claim(
        session,
        model,
        todo=todo,
        worker_id=worker_id,
        lease_seconds=settings.job_lease_seconds,
        set_status=set_status,
    )
    if job_id is None:
        return None
    if settings.worker_chaos_pause_seconds:  # fault injection: be killable mid-job
        time.sleep(settings.worker_chaos_pause_seconds)
    return session.get(model, job_id)


def finish(session: Session, model: Any, job_id: int, worker_id: str, **values: Any) -> bool:
    """The job's final fenced update, ending its lease. Commits with it everything the
    session holds (faces, matches...) only if the job is still this worker's."""
    ok = fenced_update(session, model, job_id, worker_id, **values, **release_values())
    if ok:
        session.commit()
    else:
        session.rollback()
    return ok


def gave_up(job: LeasedJob, settings: Settings) -> dict[str, str] | None:
    """Failure columns when the job already used all its attempts (its workers kept dying)."""
    if job.attempts <= settings.job_max_attempts:
        return None
    last = f" Last error: {job.error_message}" if job.error_message else ""
    return {
        "error_code": job.error_code or "gave_up",
        "error_message": f"Gave up after {settings.job_max_attempts} attempts.{last}",
    }


def crashed(
    session: Session,
    model: Any,
    job: LeasedJob,
    job_id: int,
    worker_id: str,
    *,
    exc: BaseException,
    settings: Settings,
    retry_status: str,
    failed_status: str,
) -> None:
    """An unexpected error: retry later with backoff, or fail once attempts are used up."""
    session.rollback()
    message = f"{type(exc).__name__}: {exc}"
    if job.attempts >= settings.job_max_attempts:
        finish(
            session,
            model,
            job_id,
            worker_id,
            status=failed_status,
            error_code="processing_error",
            error_message=message[:2000],
        )
    else:
        retry_later(
            session,
            model,
            job_id,
            worker_id,
            status=retry_status,
            error_code="processing_error",
            error_message=message,
            attempts=job.attempts,
        )
