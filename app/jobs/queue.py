"""The SQL of leased job rows: claim, renew, and the fenced update every later write uses.

A worker claims one row at a time: a cheap unlocked read finds a candidate, then one
UPDATE takes it (on PostgreSQL through ``FOR UPDATE SKIP LOCKED``, so workers on several
machines never take the same row; SQLite serialises writers anyway). A kind may group its
rows (``JobKind.group_by``): the candidate is then the oldest row of the group with the
fewest rows waiting, so a crowd of one group is served in turn with the others. The claim sets a
lease that the runner's heartbeat renews while the handler runs; a worker that dies
(kill -9) stops renewing it and the row becomes claimable again when it expires. Every
write about a job is *fenced* by ``lease_owner``: a worker that lost its lease cannot
overwrite the new owner's work. The runner (``app.jobs.runner``) alone claims, renews and
writes; ``queue_position`` is also read by a selfie upload, for the place it tells the guest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.core.database import utcnow


def _claimable(model: Any, todo: tuple[str, ...], scope: Callable[[], Any] | None = None) -> Any:
    now = utcnow()
    return and_(
        model.status.in_(todo),
        or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
        or_(model.available_at.is_(None), model.available_at <= now),
        *([scope()] if scope is not None else []),
    )


def claim(
    session: Session,
    model: Any,
    *,
    todo: tuple[str, ...],
    worker_id: str,
    lease_seconds: float,
    set_status: str | None = None,
    group_by: Callable[[], Any] | None = None,
    scope: Callable[[], Any] | None = None,
) -> int | None:
    """Take a claimable row of ``model``: the oldest or, with ``group_by`` (the SQL expression
    of a row's group, e.g. whose it is), the oldest of the group with the fewest claimable
    rows, so that one group's backlog does not make every other group wait behind it. ``scope``:
    the SQL condition of the rows this kind takes, when kinds share a table. Its id, or None.
    Commits."""
    if group_by is None:
        first = session.scalar(select(model.id).where(_claimable(model, todo, scope)).limit(1))
    else:
        backlog = func.count().over(partition_by=group_by())
        ranked = (
            select(model.id.label("id"), backlog.label("backlog"))
            .where(_claimable(model, todo, scope))
            .subquery()
        )
        first = session.scalar(select(ranked.c.id).order_by(ranked.c.backlog, ranked.c.id).limit(1))
    if first is None:
        session.rollback()
        return None
    values: dict[str, Any] = {
        "lease_owner": worker_id,
        "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds),
        "attempts": model.attempts + 1,
    }
    if set_status:
        values["status"] = set_status
    # The fair pick, unless another worker took it meanwhile: then the oldest.
    job_id = _take(session, model, todo, values, scope, only=first) if group_by is not None else None
    if job_id is None:
        job_id = _take(session, model, todo, values, scope)
    session.commit()
    return job_id


def _take(
    session: Session,
    model: Any,
    todo: tuple[str, ...],
    values: dict[str, Any],
    scope: Callable[[], Any] | None,
    only: int | None = None,
) -> int | None:
    candidate = select(model.id).where(_claimable(model, todo, scope))
    if only is not None:
        candidate = candidate.where(model.id == only)
    locked = candidate.order_by(model.id).limit(1).with_for_update(skip_locked=True).scalar_subquery()
    stmt = (
        update(model)
        .where(model.id == locked)
        .values(**values)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    job_id: int | None = session.execute(stmt).scalar_one_or_none()
    return job_id


def owned(model: Any, job_id: int, worker_id: str) -> Any:
    """The fence: the row is still this worker's."""
    return and_(model.id == job_id, model.lease_owner == worker_id)


def fenced_update(session: Session, model: Any, job_id: int, worker_id: str, /, **values: Any) -> bool:
    """Update the job only if this worker still holds it; False if the lease was lost. The
    parameters before ``/`` are positional, so a column may be called ``model``."""
    stmt = (
        update(model)
        .where(owned(model, job_id, worker_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result: Any = session.execute(stmt)
    return bool(result.rowcount == 1)


def renew(session: Session, model: Any, job_id: int, worker_id: str, lease_seconds: float) -> bool:
    """Extend this worker's lease (the heartbeat); False once the lease is lost. Commits."""
    ok = fenced_update(
        session, model, job_id, worker_id, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)
    )
    session.commit()
    return ok


def released(**values: Any) -> dict[str, Any]:
    """``values`` plus the columns that end a lease."""
    return {**values, "lease_owner": None, "lease_expires_at": None, "available_at": None}


def later(delay: float, **values: Any) -> dict[str, Any]:
    """``values`` plus the columns that end a lease and make the job claimable after ``delay``."""
    return {**released(**values), "available_at": utcnow() + timedelta(seconds=delay)}


def queue_position(session: Session, model: Any, job_id: int, *, todo: tuple[str, ...]) -> int:
    """1 + the number of jobs of ``model`` still to do that come before ``job_id``."""
    ahead = session.scalar(
        select(func.count()).select_from(model).where(model.status.in_(todo), model.id < job_id)
    )
    return int(ahead or 0) + 1
