"""What a job kind is, and the registry the runner reads.

A domain makes its rows jobs (the ``LeasedJob`` columns) and registers a :class:`JobKind`:
which rows are work, what status a retry goes back to, and a ``handle`` function. The
runner (``app.jobs.runner``) alone claims, renews the lease, retries, records the outcome
and commits; a handler only reads and writes through the session it is given and returns
an :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.jobs.models import JobStatus, LeasedJob


class Postpone(Exception):
    """Raised by a handler that cannot run now (its provider is down, throttling...): the job
    is given back for later without using an attempt, so a long outage never fails it."""

    def __init__(self, message: str, *, code: str = "postponed", retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    """What a handler decided. ``values`` are written to the job row, fenced on the lease,
    in the same transaction as everything the handler did in the session.

    ``done=False`` is a committed step: the runner commits, keeps the lease and calls the
    handler again (a photo commits its faces before matching them). ``retry_after`` gives
    the job back, to be claimed again after that many seconds. ``after_commit`` runs once the
    transaction is durable (deleting files that the committed rows no longer use).
    """

    values: dict[str, Any]
    done: bool = True
    after_commit: Callable[[], None] | None = None
    retry_after: float | None = None


Handler = Callable[[Session, Any], Outcome]


@dataclass(frozen=True)
class JobKind:
    name: str
    model: type[LeasedJob]
    todo: tuple[str, ...]  # statuses that are work
    failed_status: str
    handle: Handler
    # The status a job goes back to when retried; None keeps the status it had when claimed.
    retry_status: str | None = None
    claim_status: str | None = None  # status set by the claim itself
    priority: int = 100  # lower runs first: a guest waiting on a selfie before photos
    # The SQL expression of a row's group (e.g. whose it is): claims serve the group with the
    # fewest rows waiting first (``queue.claim``); None: oldest first.
    group_by: Callable[[], Any] | None = None
    # The SQL condition of this kind's rows when several kinds share a table (mails: the
    # awaited ones before the notifications); None: every row of the model.
    scope: Callable[[], Any] | None = None
    # Called with the job when it fails for good; what it returns runs after that commit
    # (deleting the files of a photo that will never be indexed).
    on_failed: Callable[[Any], Callable[[], None] | None] | None = None


def status_kind(
    *,
    name: str,
    model: type[LeasedJob],
    handle: Handler,
    priority: int,
    scope: Callable[[], Any] | None = None,
) -> JobKind:
    """A kind whose rows have no states of their own but ``JobStatus``'s: claimed ``running``,
    given back ``pending``, ``failed`` for good."""
    return JobKind(
        name=name,
        model=model,
        todo=JobStatus.todo(),
        failed_status=JobStatus.failed,
        handle=handle,
        retry_status=JobStatus.pending,
        claim_status=JobStatus.running,
        priority=priority,
        scope=scope,
    )


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Make a job kind known to the runner (called when its domain module is imported)."""
    _KINDS[kind.name] = kind
    return kind


def registered() -> list[JobKind]:
    """The registered kinds, in the order the runner serves them."""
    return sorted(_KINDS.values(), key=lambda k: (k.priority, k.name))
