"""The notice run: one per event, claimable once some of its guests' notices are due.

Each committed step writes the messages of up to ``NOTIFY_BATCH_SIZE`` due guests (the mail
job sends them). When none is due any more, the run waits for the next one due, or ends;
a photo matched while it ran makes it end pending (``NoticeRun.wanted``), so no match is
left untold. The runner (``app.jobs.runner``) claims, renews and commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.database import utcnow
from app.jobs.kinds import Outcome, register, status_kind
from app.jobs.models import JobStatus
from app.notices import service
from app.notices.models import NoticeRun


def handle(session: Session, run: NoticeRun) -> Outcome:
    settings = get_settings()
    if service.write_due(session=session, event_id=run.event_id, limit=settings.notify_batch_size):
        return Outcome({"error_code": None}, done=False)  # a committed step; the next batch follows
    upcoming = service.next_due(session=session, event_id=run.event_id)
    if upcoming is not None:
        wait = max(0.0, (upcoming - utcnow()).total_seconds())
        return Outcome({"status": JobStatus.pending, "attempts": 0}, retry_after=wait)
    # A photo matched since this step began asked for another run: end pending, not done. The
    # row lock makes a request arriving now wait for this commit, and then see "done".
    wanted = session.scalar(select(NoticeRun.wanted).where(NoticeRun.id == run.id).with_for_update())
    status = JobStatus.pending if wanted is not None and wanted > run.wanted else JobStatus.done
    return Outcome({"status": status, "attempts": 0, "error_code": None, "error_message": None})


# After the photos (a batch still being indexed has not settled), before its mails.
NOTICE_JOB = register(status_kind(name="notices", model=NoticeRun, handle=handle, priority=33))
