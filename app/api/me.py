"""The signed-in guest's own things: the account (``/api/me``: profile and events, password,
erasure, export) and the photos they appear in (``/api/my-photos``: list, zip, "not me").

The password asked again is throttled as a login (``accounts.guard``); zips are limited per
guest (``THROTTLE_EXPORTS_PER_GUEST``) and streamed one at a time per guest."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from zipstream import ZipStream

from app.accounts import service as accounts_service
from app.accounts.deps import CurrentUser, LoginAttempt
from app.accounts.schemas import ChangePasswordIn, DeleteAccountIn, TokenResponse, UserPublic
from app.actions import erasure, export
from app.actions import events as event_actions
from app.core.database import SessionDep
from app.core.errors import NotFound
from app.core.openapi import Tag, errors
from app.core.schemas import IdPath, OptionalIdQuery
from app.core.throttle import Slot, Throttle, too_many
from app.events import service as events_service
from app.events.schemas import MeResponse
from app.selfies import service as selfies_service
from app.selfies.schemas import MyPhotos

router = APIRouter(prefix="/api")
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}}
    },
    **errors(429),
}
EXPORTS = Throttle("exports", "throttle_exports_per_guest")
# Held while a guest's zip streams; a stream that dies without letting go frees it after this.
EXPORT_SLOT = Slot("export", ttl=300.0)
_EXPORT_BUSY = "One of your downloads is still running: wait until it ends."
_TOO_MANY_EXPORTS = "You downloaded your photos often lately: try again later."


@router.get("/me", tags=[Tag.accounts])
def me(user: CurrentUser, session: SessionDep) -> MeResponse:
    """The signed-in user and the events they are a guest of, each with its erasure date
    ``purge_at`` (its end, or its last upload when it has none, plus its retention)."""
    events = event_actions.guest_events(session=session, user_id=user.id)
    return MeResponse(**UserPublic.model_validate(user).model_dump(), events=events)


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 409, 429), tags=[Tag.accounts]
)
def delete_me(body: DeleteAccountIn, user: CurrentUser, session: SessionDep, attempt: LoginAttempt) -> None:
    """Erase your account and everything of it: selfies, face templates, matches, event
    memberships, files. Your tokens stop working at once. The password is asked again (401
    ``wrong_password``; throttled and counted as a failed login: 429 ``too_many_requests``
    with ``Retry-After`` past the limits); an organizer's account may go once it holds no
    events (else 409 ``organizer_has_events``)."""
    erasure.erase_user(session=session, user=user, password=body.password, attempt=attempt)


@router.post("/me/password", responses=errors(401, 429), tags=[Tag.accounts])
def change_password(
    body: ChangePasswordIn, user: CurrentUser, session: SessionDep, attempt: LoginAttempt
) -> TokenResponse:
    """Change your password (the current one is asked again: throttled and counted as a
    failed login, 429 ``too_many_requests`` past the limits). Every token issued before
    stops working; the answer carries a new one. 401 ``wrong_password``, 422 ``weak_password``."""
    user = accounts_service.change_password(
        session=session,
        user=user,
        current=body.current_password,
        new=body.new_password,
        context=(),
        attempt=attempt,
    )
    return accounts_service.token_for(user)


def _start_export(user_id: int) -> str:
    """The export slot of ``user_id`` (429 while another of their zips streams, or past their
    limit of exports); counted as one export."""
    key = str(user_id)
    EXPORTS.check(key, message=_TOO_MANY_EXPORTS)
    holder = EXPORT_SLOT.acquire(key)
    if holder is None:
        raise too_many(_EXPORT_BUSY, 10)
    EXPORTS.hit(key)
    return holder


class _HeldStream:
    """A zip's chunks, read in worker threads, holding the guest's export slot meanwhile."""

    def __init__(self, archive: ZipStream, user_id: int, holder: str) -> None:
        self.chunks, self.key, self.holder = iter(archive), str(user_id), holder
        self.refreshed = time.monotonic()

    def read(self) -> bytes | None:
        if time.monotonic() - self.refreshed > EXPORT_SLOT.ttl / 4:
            EXPORT_SLOT.refresh(self.key, self.holder)
            self.refreshed = time.monotonic()
        return next(self.chunks, None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # The slot is let go at the end, also when the client goes away mid-way.
        try:
            while (chunk := await run_in_threadpool(self.read)) is not None:
                yield chunk
        finally:
            EXPORT_SLOT.release(self.key, self.holder)


def _zip_response(archive: ZipStream, filename: str, user_id: int, holder: str) -> StreamingResponse:
    return StreamingResponse(
        _HeldStream(archive, user_id, holder),
        media_type="application/zip",
        headers={
            "Content-Length": str(len(archive)),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


@router.get("/me/export", response_class=StreamingResponse, responses=_ZIP, tags=[Tag.photos])
def export_my_data(user: CurrentUser, session: SessionDep) -> StreamingResponse:
    """Everything kept about you, as a zip: ``me.json`` (account, consent, events, selfie
    state, selfie changes, matches, "not me" answers) and the photos you are matched in.
    One zip at a time, and a few an hour (with ``/api/my-photos/download``): else 429."""
    holder = _start_export(user.id)
    try:
        record = export.export_record(session=session, user=user)
        files = export.photo_files(session=session, user_id=user.id, event_id=None)
        archive = export.zip_of(files, record)
    except BaseException:
        EXPORT_SLOT.release(str(user.id), holder)
        raise
    return _zip_response(archive, "my-data.zip", user.id, holder)


@router.get("/my-photos/download", response_class=StreamingResponse, responses=_ZIP, tags=[Tag.photos])
def download_my_photos(
    user: CurrentUser, session: SessionDep, event_id: OptionalIdQuery = None
) -> StreamingResponse:
    """All the photos you are matched in (of one event with ``event_id``), as one zip. One
    zip at a time, and a few an hour (with ``/api/me/export``): else 429 with ``Retry-After``."""
    holder = _start_export(user.id)
    try:
        archive = export.zip_of(export.photo_files(session=session, user_id=user.id, event_id=event_id))
    except BaseException:
        EXPORT_SLOT.release(str(user.id), holder)
        raise
    return _zip_response(archive, "my-photos.zip", user.id, holder)


@router.get("/my-photos", responses=errors(404), tags=[Tag.selfies])
def my_photos(user: CurrentUser, session: SessionDep, event_id: OptionalIdQuery = None) -> MyPhotos:
    """The event photos you appear in, best matches first (optionally for one event)."""
    member = event_id is None or events_service.is_member(session=session, user_id=user.id, event_id=event_id)
    if not member:
        raise NotFound("You are not a guest of this event.", code="event_not_found")
    return MyPhotos(photos=selfies_service.my_photos(session=session, user_id=user.id, event_id=event_id))


@router.post(
    "/my-photos/{photo_id}/not-me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404),
    tags=[Tag.selfies],
)
def not_me(photo_id: IdPath, user: CurrentUser, session: SessionDep) -> None:
    """This photo is not of you: it leaves your list and is never matched to you again
    (other guests matched in it keep it). 404 if it is not in your list."""
    selfies_service.not_me(session=session, user_id=user.id, photo_id=photo_id)


@router.delete("/my-photos/{photo_id}/not-me", status_code=status.HTTP_204_NO_CONTENT, tags=[Tag.selfies])
def undo_not_me(photo_id: IdPath, user: CurrentUser, session: SessionDep) -> None:
    """Take back a "not me": your matches are computed again in the background."""
    selfies_service.not_me(session=session, user_id=user.id, photo_id=photo_id, undo=True)
