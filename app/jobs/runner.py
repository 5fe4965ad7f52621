"""The one owner of a job's life: claim, heartbeat, handler, outcome, retry, commit.

``run_one(kind)`` claims the next job of a registered kind, renews its lease from a
heartbeat thread while the handler runs, and then, in the handler's own transaction, writes
the outcome fenced on the lease and commits. A handler that raises ``Postpone`` gives the
job back for later without using an attempt; any other exception is retried with
exponential backoff until ``JOB_MAX_ATTEMPTS``, then the job fails with the reason. A job
whose workers kept dying (its attempts used up by claims alone) fails the same way.

``serve()`` is one worker process's loop: the kinds in priority order, and when there is
nothing to do, sleep on the wake-up listener (``app.jobs.wakeup``). ``supervise()`` keeps a
pool of such processes alive (``python -m app.worker``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.core.database import is_write_conflict, session_scope
from app.jobs import queue
from app.jobs.kinds import JobKind, Outcome, Postpone, registered
from app.jobs.wakeup import WakeListener, listener_name

log = logging.getLogger("app.jobs")
#: A job that lost a write race on SQLite runs again this soon, its attempt not counted.
WRITE_CONFLICT_RETRY_SECONDS = 0.05
# glibc's malloc_trim (absent elsewhere, e.g. musl: then nothing is trimmed).
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)


def release_memory() -> None:
    """Hand the heap's free pages back to the system. glibc keeps in the process what a job
    freed (a 12 MP photo's buffers, the rows of an event's 40,000 selfies), so without this a
    face worker's resident memory would climb to the sum of its largest jobs' leftovers."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class Heartbeat:
    """Renews a job's lease every third of its length until stopped, on its own connection."""

    def __init__(self, kind: JobKind, job_id: int, worker_id: str, settings: Settings) -> None:
        self.kind, self.job_id, self.worker_id = kind, job_id, worker_id
        self.lease = settings.job_lease_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                with session_scope() as session:
                    ok = queue.renew(session, self.kind.model, self.job_id, self.worker_id, self.lease)
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("could not renew the lease of %s %s", self.kind.name, self.job_id, exc_info=True)
                continue
            if not ok:
                self.lost = True
                log.warning("%s %s: lease lost while running", self.kind.name, self.job_id)
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _decide(kind: JobKind, session: Session, job: Any, settings: Settings) -> Outcome:
    """The handler's outcome, or the runner's own when the job gave up, asked to be
    postponed, or failed (then retried with exponential backoff while attempts remain)."""
    retry_status, attempts, job_id = kind.retry_status or job.status, job.attempts, job.id
    if attempts > settings.job_max_attempts:  # its workers kept dying before finishing it
        last = f" Last error: {job.error_message}" if job.error_message else ""
        message = f"Gave up after {settings.job_max_attempts} attempts.{last}"
        return Outcome(
            {
                "status": kind.failed_status,
                "error_code": job.error_code or "gave_up",
                "error_message": message,
            }
        )
    try:
        return kind.handle(session, job)
    except Postpone as exc:
        session.rollback()
        log.warning("%s %s postponed: %s", kind.name, job_id, exc.message)
        attempt_back = kind.model.attempts - 1
        values = {"status": retry_status, "attempts": attempt_back, "error_code": exc.code}
        return Outcome({**values, "error_message": exc.message[:2000]}, retry_after=exc.retry_after)
    except Exception as exc:
        session.rollback()
        if is_write_conflict(exc):  # another worker wrote first (SQLite): run it again soon
            log.info("%s %s: another worker wrote first; run again", kind.name, job_id)
            values = {"status": retry_status, "attempts": kind.model.attempts - 1}
            return Outcome(values, retry_after=WRITE_CONFLICT_RETRY_SECONDS)
        log.exception("%s %s failed (attempt %d)", kind.name, job_id, attempts)
        values = {"error_code": "processing_error", "error_message": f"{type(exc).__name__}: {exc}"[:2000]}
        if attempts >= settings.job_max_attempts:
            return Outcome({"status": kind.failed_status, **values})
        return Outcome({"status": retry_status, **values}, retry_after=min(300.0, 2.0**attempts))


def _with_clean_up(outcome: Outcome, clean_up: Callable[[], None] | None) -> Outcome:
    if clean_up is None:
        return outcome
    first = outcome.after_commit

    def both() -> None:
        if first is not None:
            first()
        clean_up()

    return replace(outcome, after_commit=both)


def _step(kind: JobKind, job_id: int, worker_id: str, settings: Settings) -> bool:
    """One handler call and its outcome, committed; True when the job wants another step."""
    with session_scope() as session:
        job: Any = session.get(kind.model, job_id)
        if job is None or job.lease_owner != worker_id:
            return False  # deleted (cancelled) or taken over meanwhile
        retry_status = kind.retry_status or job.status
        outcome = _decide(kind, session, job, settings)
        if outcome.values.get("status") == kind.failed_status and kind.on_failed is not None:
            outcome = _with_clean_up(outcome, kind.on_failed(job))
        if outcome.retry_after is not None:
            values = queue.later(outcome.retry_after, **outcome.values)
        elif outcome.done:
            values = queue.released(**outcome.values)
        else:
            values = outcome.values
        try:
            if not queue.fenced_update(session, kind.model, job_id, worker_id, **values):
                session.rollback()
                log.info("%s %s: lease lost, outcome dropped", kind.name, job_id)
                return False
            session.commit()
        except OperationalError as exc:
            if not is_write_conflict(exc):
                raise
            # The outcome could not be written either (the write queue stayed held past the busy
            # timeout): left as it is, the job would wait for its lease to run out and be claimed
            # again, its attempt used. What the handler did is rolled back; the job goes back.
            session.rollback()
            _give_back(kind, session, job_id, worker_id, status=retry_status, settings=settings)
            return False
    if outcome.after_commit is not None:
        try:
            outcome.after_commit()
        except Exception:
            log.exception("%s %s: clean-up after commit failed", kind.name, job_id)
    status = values.get("status", "")
    log.info("%s %s: %s%s", kind.name, job_id, status or "step", "" if outcome.done else " (next step)")
    return not outcome.done


def _give_back(
    kind: JobKind, session: Session, job_id: int, worker_id: str, *, status: str, settings: Settings
) -> None:
    """Hand a job whose writes lost a race back for another run soon, without using its
    attempt; tried again while the write queue stays held, for up to a lease."""
    deadline = time.monotonic() + settings.job_lease_seconds
    while True:
        values = queue.later(WRITE_CONFLICT_RETRY_SECONDS, status=status, attempts=kind.model.attempts - 1)
        try:
            given = queue.fenced_update(session, kind.model, job_id, worker_id, **values)
            session.commit()
        except OperationalError as exc:
            session.rollback()
            if not is_write_conflict(exc) or time.monotonic() > deadline:
                raise
            continue
        done = "run again" if given else "lease lost meanwhile"
        log.info("%s %s: its writes waited too long for the database; %s", kind.name, job_id, done)
        return


def run_one(kind: JobKind, *, worker_id: str, settings: Settings | None = None) -> bool:
    """Claim and run one job of ``kind``; False when there was none."""
    settings = settings or get_settings()
    with session_scope() as session:
        job_id = queue.claim(
            session,
            kind.model,
            todo=kind.todo,
            worker_id=worker_id,
            lease_seconds=settings.job_lease_seconds,
            set_status=kind.claim_status,
            group_by=kind.group_by,
            scope=kind.scope,
        )
    if job_id is None:
        return False
    if settings.worker_chaos_pause_seconds:  # fault injection: be killable mid-job
        time.sleep(settings.worker_chaos_pause_seconds)
    with Heartbeat(kind, job_id, worker_id, settings):
        while _step(kind, job_id, worker_id, settings):
            if settings.worker_chaos_step_seconds:  # fault injection: be killable between steps
                time.sleep(settings.worker_chaos_step_seconds)
    release_memory()
    return True


def work_once(*, worker_id: str, kinds: list[JobKind] | None = None) -> bool:
    """Run one job of the first kind that has one (kinds in priority order)."""
    return any(run_one(kind, worker_id=worker_id) for kind in (kinds if kinds is not None else registered()))


_stopping = False


def _request_stop(_signum: int, _frame: FrameType | None) -> None:
    global _stopping
    _stopping = True


def serve(index: int) -> None:
    """One worker process's loop, until SIGTERM."""
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = get_settings()
    worker_id = f"{settings.node_name}:{os.getpid()}:{index}"  # node:pid:index, shown in leases
    listener = WakeListener(settings, listener_name(index))
    kinds = registered()
    log.info("worker %s ready for %s", worker_id, ", ".join(k.name for k in kinds))
    try:
        while not _stopping:
            try:
                did = work_once(worker_id=worker_id, kinds=kinds)
            except OperationalError as exc:  # database down or not migrated: say it in one line
                log.error("worker cannot reach the database: %s", str(exc.orig).strip().splitlines()[0])
                did = False
                time.sleep(2)
            except Exception:
                log.exception("worker loop error")
                did = False
                time.sleep(1)
            if not did:
                listener.wait(settings.job_idle_poll_seconds)
    finally:
        listener.close()


def supervise(
    target: Callable[[int, int], None],
    processes: int,
    *,
    nice: int,
    maintenance: Callable[[], None] | None = None,
    every: float = 3600.0,
    companion: Callable[[int, int], None] | None = None,
) -> int:
    """Keep ``processes`` workers (``target(index, nice)``, spawned) alive until asked to stop,
    and the ``companion`` process of the node that serves them (``companion(-1, nice)``, the
    gallery searcher); run ``maintenance`` (this node's housekeeping) at start and every
    ``every`` seconds."""
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    ctx = multiprocessing.get_context("spawn")
    parent = os.getppid()
    children: dict[int, BaseProcess] = {}

    def start(i: int) -> None:
        if i < 0 and companion is not None:
            p = ctx.Process(target=companion, args=(i, nice), name="gallery-searcher", daemon=True)
        else:
            p = ctx.Process(target=target, args=(i, nice), name=f"face-worker-{i}", daemon=True)
        p.start()
        children[i] = p

    if companion is not None:
        start(-1)
    for i in range(processes):
        start(i)
    log.info("face worker pool: %d processes", processes)
    due = time.monotonic()
    while not _stopping:
        if maintenance is not None and time.monotonic() >= due:
            due = time.monotonic() + every
            try:
                maintenance()
            except Exception:  # housekeeping never takes the pool down; it runs again later
                log.exception("node maintenance failed")
        time.sleep(0.5)
        if os.getppid() != parent:  # our parent died without stopping us
            break
        for i, p in list(children.items()):
            if not p.is_alive():
                what = "gallery searcher" if i < 0 else "face worker"
                log.warning("%s %s exited with %s; restarting it", what, p.pid, p.exitcode)
                start(i)
    for p in children.values():
        if p.is_alive() and p.pid:
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in children.values():
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    return 0
