"""Claiming, renewing, finishing and retrying leased job rows.

A worker claims one row at a time: a cheap unlocked read finds a candidate, then one
UPDATE takes it (on PostgreSQL through ``FOR UPDATE SKIP LOCKED``, so workers on several
machines never take the same row; SQLite serialises writers anyway). The claim sets a
lease; a worker that dies (kill -9) simply stops renewing it and the row becomes
claimable again when it expires. Every write a worker makes about a job is *fenced* by
``lease_owner``: a worker that lost its lease cannot overwrite the new owner's work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

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


def release_values() -> dict[str, Any]:
    """Columns that end a lease, to merge into a job's final fenced update."""
    return {"lease_owner": None, "lease_expires_at": None, "available_at": None}
