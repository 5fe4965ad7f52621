"""Guest selfie endpoints: upload (with the synchronous face check), status, my photos."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.accounts.deps import CurrentUser
from app.core.config import get_settings
from app.core.database import SessionDep, session_scope
from app.core.errors import Conflict, NotFound, Unprocessable
from app.events.service import is_member
from app.selfies import service
from app.selfies.models import SelfieStatus
from app.selfies.schemas import MyPhotos, SelfieAccepted, SelfieState
from app.selfies.waiter import selfie_waiter

router = APIRouter(prefix="/api", tags=["selfies"])

_ERRORS = {
    413: {"description": "`image_too_large` (bytes or pixels)."},
    415: {"description": "`unsupported_format`: not a JPEG, PNG, WebP or HEIC image."},
    422: {
        "description": "`no_face`, `multiple_faces`, `face_too_small`, `too_blurry`, `too_dark`;"
        " with Azure Face: `low_quality`."
    },
    503: {"description": "`face_workers_busy`: retry after `Retry-After` seconds."},
}


def _store(user_id: int, data: bytes) -> int:
    settings = get_settings()
    image_format = service.check_upload(data, settings)
    with session_scope() as session:
        return service.create_selfie(
            session=session, user_id=user_id, data=data, image_format=image_format, settings=settings
        ).id


def _discard(selfie_id: int) -> None:
    with session_scope() as session:
        service.discard_selfie(session=session, selfie_id=selfie_id)


@router.post("/upload-selfie", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
async def upload_selfie(file: Annotated[UploadFile, File()], user: CurrentUser) -> JSONResponse:
    """Upload the selfie used to find your photos (multipart field ``file``).

    The face is checked before answering: a selfie that cannot be used is refused with a
    reason to act on. A good one answers 202 ``processing``; matching then runs in the
    background (poll ``GET /api/selfie``). It replaces your previous selfie.
    """
    settings = get_settings()
    data = await file.read(settings.selfie_max_bytes + 1)
    selfie_id = await run_in_threadpool(_store, user.id, data)
    outcome = await selfie_waiter().wait(selfie_id, settings.selfie_check_timeout)
    if outcome is not None:
        if outcome.status is None:
            raise Conflict("A newer selfie replaced this one.", code="selfie_superseded")
        if outcome.status == SelfieStatus.rejected:
            # The guest gets the reason now; the refused selfie is not kept.
            await run_in_threadpool(_discard, selfie_id)
            raise Unprocessable(outcome.error_message, code=outcome.error_code or "selfie_rejected")
        if outcome.status == SelfieStatus.failed:
            raise Unprocessable(outcome.error_message, code=outcome.error_code or "selfie_failed")
    # Checked (matching runs on), or still queued: the client polls GET /api/selfie.
    body = SelfieAccepted(selfie_id=selfie_id, status="processing")
    return JSONResponse(body.model_dump(), status_code=202)


@router.get("/selfie")
def get_selfie(user: CurrentUser, session: SessionDep) -> SelfieState:
    """Your latest selfie: ``processing``, ``ready`` (with the number of matched photos) or
    ``failed`` with the reason."""
    selfie = service.current_selfie(session=session, user_id=user.id)
    if selfie is None:
        raise NotFound("You have not uploaded a selfie yet.", code="no_selfie")
    return service.selfie_state(session=session, selfie=selfie)


@router.get("/my-photos")
def my_photos(
    user: CurrentUser, session: SessionDep, event_id: Annotated[int | None, Query(ge=1)] = None
) -> MyPhotos:
    """The event photos you appear in, best matches first (optionally for one event)."""
    if event_id is not None and not is_member(session=session, user_id=user.id, event_id=event_id):
        raise NotFound("You are not a guest of this event.", code="event_not_found")
    return MyPhotos(photos=service.my_photos(session=session, user_id=user.id, event_id=event_id))
