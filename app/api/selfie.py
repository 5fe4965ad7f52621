"""The guest's selfie: upload (accepted at once, checked in the background), its state (with
long-poll and Server-Sent Events), and its erasure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.accounts.deps import CurrentUser
from app.core.config import get_settings
from app.core.database import SessionDep, commit_now, session_scope
from app.core.errors import NotFound
from app.core.openapi import Tag, errors
from app.core.uploads import multipart_body, read_parts
from app.selfies import service
from app.selfies.schemas import SelfieAccepted, SelfieState
from app.selfies.service import IN_PROGRESS, Snapshot
from app.selfies.waiter import selfie_watcher

router = APIRouter(prefix="/api", tags=[Tag.selfies])

MAX_WAIT_SECONDS = 30
KEEP_ALIVE_SECONDS = 15


@router.post(
    "/upload-selfie",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(415, 429),
    openapi_extra=multipart_body("file", "The selfie: JPEG, PNG, WebP or HEIC.", many=False),
)
def upload_selfie(request: Request, user: CurrentUser, session: SessionDep) -> SelfieAccepted:
    """Upload the selfie used to find your photos (multipart field ``file``).

    It is accepted at once (202, ``checking``) after the quick checks of size and format,
    and queued for the face check; however many guests upload at once, none is refused.
    Follow it with ``GET /api/selfie?wait=30`` or ``GET /api/selfie/events``: it becomes
    ``matching`` then ``ready``, or ``rejected`` with a reason to act on (``no_face``,
    ``multiple_faces``, ``face_too_small``, ``face_hidden``, ``face_turned``, ``too_blurry``,
    ``too_dark``...). A selfie
    still waiting for its check is cancelled by a new upload; an accepted one replaces
    your previous selfie, a rejected one keeps it. At most ``THROTTLE_SELFIES_PER_GUEST``
    uploads per guest (429 beyond); the token is checked before the body is read.
    """
    settings = get_settings()
    service.SELFIE_UPLOADS.check(str(user.id), message=service.TOO_MANY_SELFIES)
    data = service.read_selfie(
        read_parts(request, fields={"file"}, max_part_bytes=settings.selfie_max_bytes, max_parts=1), settings
    )
    service.SELFIE_UPLOADS.hit(str(user.id))
    image_format = service.check_upload(data, settings)
    selfie, position = service.create_selfie(
        session=session, user_id=user.id, data=data, image_format=image_format, settings=settings
    )
    commit_now(session)
    return SelfieAccepted(selfie_id=selfie.id, status="checking", queue_position=position)


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
        **errors(404),
    },
)
async def selfie_events(user: CurrentUser) -> StreamingResponse:
    """Server-Sent Events: an ``event: selfie`` with the state of ``GET /api/selfie`` (``data:
    null`` before any upload) now and at every change: status, or new matched photos.
    A comment line every 15 s keeps the connection open; the stream ends after
    ``SELFIE_EVENTS_MAX_SECONDS`` and the browser's EventSource reconnects."""
    lifetime = get_settings().selfie_events_max_seconds
    watcher = selfie_watcher()

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

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.delete("/selfie", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
def delete_selfie(user: CurrentUser, session: SessionDep) -> None:
    """Erase your selfie: its image, its face template and all your matches. Nothing is
    matched to you again until you upload a new one. 404 ``no_selfie`` if there is none."""
    if not service.delete_selfies(session=session, user_id=user.id):
        raise NotFound("You have no selfie.", code="no_selfie")
