"""The guest's selfie: upload (accepted at once, checked in the background), its state (with
long-poll and Server-Sent Events), and its erasure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from app.accounts.deps import CurrentUser
from app.core.config import get_settings
from app.core.database import SessionDep, commit_now, session_scope
from app.core.errors import NotFound
from app.core.limits import ConcurrencyCap
from app.core.openapi import Tag, errors
from app.core.uploads import Part, multipart_body, received_files
from app.selfies import service
from app.selfies.models import Selfie
from app.selfies.schemas import SelfieAccepted, SelfieState
from app.selfies.service import IN_PROGRESS, Snapshot
from app.selfies.waiter import selfie_watcher

router = APIRouter(prefix="/api", tags=[Tag.selfies])

MAX_WAIT_SECONDS = 30
KEEP_ALIVE_SECONDS = 15
#: Selfie uploads being received by this worker, and live streams open (per guest).
UPLOADS = ConcurrencyCap("selfie uploads")
STREAMS = ConcurrencyCap("live selfie streams")


@router.post(
    "/upload-selfie",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(413, 415, 429),
    openapi_extra=multipart_body("file", "The selfie: JPEG, PNG, WebP or HEIC.", many=False),
)
async def upload_selfie(request: Request, user: CurrentUser, session: SessionDep) -> SelfieAccepted:
    """Upload the selfie used to find your photos (multipart field ``file``).

    It is accepted at once (202, ``checking``) after the quick checks of size and format,
    and queued for the face check: the queue takes any number of selfies.
    Follow it with ``GET /api/selfie?wait=30`` or ``GET /api/selfie/events``: it becomes
    ``matching`` then ``ready``, or ``rejected`` with a reason to act on (``no_face``,
    ``multiple_faces``, ``face_too_small``, ``face_hidden``, ``face_turned``, ``too_blurry``,
    ``too_dark``...). A selfie still waiting for its check is cancelled by a new upload; an
    accepted one replaces your previous selfie, a rejected one keeps it.

    Limits (the token is checked before the body is read, the limits before it too): at most
    ``SELFIE_CHANGES_PER_DAY`` changes in 24 hours, an accepted selfie replacing another or a
    deletion (429 ``selfie_changes_exhausted``, with ``Retry-After``); at most
    ``THROTTLE_SELFIES_PER_GUEST`` uploads, counted when they start, and
    ``SELFIE_UPLOADS_PER_GUEST`` at once (429 ``too_many_requests``); a web worker receives
    ``SELFIE_UPLOADS_PER_WORKER`` at once (503, retry after ``Retry-After``); the body must
    arrive within ``SELFIE_UPLOAD_MAX_SECONDS`` (408). A PNG, WebP or HEIC selfie has at most
    ``SELFIE_MAX_DECODE_PIXELS``, and no 16-bit image is taken (413 / 415).
    """
    settings = get_settings()
    owner = str(user.id)
    with UPLOADS.held(
        owner, per_owner=settings.selfie_uploads_per_guest, per_worker=settings.selfie_uploads_per_worker
    ):
        await run_in_threadpool(_start_upload, user.id)
        # The body is read here, by the event loop: a slow client holds no thread.
        async with received_files(
            request, fields={"file"}, max_part_bytes=settings.selfie_max_bytes, max_parts=1
        ) as parts:
            selfie, position = await run_in_threadpool(_accept, session, user.id, parts)
    return SelfieAccepted(selfie_id=selfie.id, status="checking", queue_position=position)


def _start_upload(user_id: int) -> None:
    with session_scope() as session:  # its own short unit of work: no connection held meanwhile
        service.start_upload(session=session, user_id=user_id, settings=get_settings())


def _accept(session: Session, user_id: int, parts: list[Part]) -> tuple[Selfie, int]:
    accepted = service.accept_upload(session=session, user_id=user_id, parts=parts, settings=get_settings())
    commit_now(session)
    return accepted


def _state(user_id: int) -> SelfieState | None:
    with session_scope() as session:
        return service.current_state(session=session, user_id=user_id)


def _snapshot(state: SelfieState | None) -> Snapshot:
    if state is None:
        return Snapshot(None, None, 0)
    return Snapshot(state.selfie_id, state.status, state.matches)


@router.get("/selfie", responses=errors(404))
async def get_selfie(
    user: CurrentUser,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Seconds to hold the answer while the selfie is "
            "checking or matching, until its status changes (long-poll).",
        ),
    ] = 0,
) -> SelfieState:
    """Your latest selfie: ``checking`` (with ``queue_position``), ``matching``, ``ready``
    (with the number of matched photos), or ``rejected`` with ``error.code`` and
    ``error.message``."""
    state = await run_in_threadpool(_state, user.id)
    if state is not None and wait and state.status in IN_PROGRESS:
        known = _snapshot(state)

        def moved(s: Snapshot) -> bool:
            return (s.selfie_id, s.status) != (known.selfie_id, known.status)

        if await selfie_watcher().wait(user.id, moved, wait) is not None:
            state = await run_in_threadpool(_state, user.id)
    if state is None:
        raise NotFound("You have not uploaded a selfie yet.", code="no_selfie")
    return state


@router.get(
    "/selfie/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "A stream of `selfie` events."},
        **errors(404, 429),
    },
)
async def selfie_events(user: CurrentUser) -> StreamingResponse:
    """Server-Sent Events: an ``event: selfie`` with the state of ``GET /api/selfie`` (``data:
    null`` before any upload) now and at every change: status, or new matched photos.
    A comment line every 15 s keeps the connection open; the stream ends after
    ``SELFIE_EVENTS_MAX_SECONDS`` and the browser's EventSource reconnects. At most
    ``SELFIE_EVENTS_PER_GUEST`` streams of one guest at once (per web worker; 429
    ``too_many_requests`` beyond)."""
    settings = get_settings()
    lifetime = settings.selfie_events_max_seconds
    watcher = selfie_watcher()
    owner = str(user.id)
    STREAMS.acquire(owner, per_owner=settings.selfie_events_per_guest)

    async def stream() -> AsyncIterator[str]:
        deadline = time.monotonic() + lifetime
        yield "retry: 2000\n\n"
        state = await run_in_threadpool(_state, user.id)
        while True:
            known = _snapshot(state)
            body = state.model_dump_json() if state is not None else "null"
            yield f"event: selfie\ndata: {body}\n\n"
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                got = await watcher.wait(user.id, known.__ne__, min(KEEP_ALIVE_SECONDS, remaining))
                if got is not None:
                    break
                yield ": keep-alive\n\n"
            state = await run_in_threadpool(_state, user.id)

    return _HeldStream(
        stream(),
        release=lambda: STREAMS.release(owner),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _HeldStream(StreamingResponse):
    """A stream that gives its place back (``release``) however it ends."""

    def __init__(self, content: AsyncIterator[str], *, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


@router.delete("/selfie", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
def delete_selfie(user: CurrentUser, session: SessionDep) -> None:
    """Erase your selfie: its image, its face template and all your matches. Nothing is
    matched to you again until you upload a new one. 404 ``no_selfie`` if there is none.
    Never refused, but deleting an accepted selfie counts as one of the day's selfie changes."""
    if not service.delete_selfies(session=session, user_id=user.id):
        raise NotFound("You have no selfie.", code="no_selfie")
