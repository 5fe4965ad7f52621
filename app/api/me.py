"""The signed-in guest's own things: the account (``/api/me``: profile and events, password,
erasure, export) and the photos they appear in (``/api/my-photos``: list, zip, "not me")."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import StreamingResponse
from zipstream import ZipStream

from app.accounts import service as accounts_service
from app.accounts.deps import CurrentUser
from app.accounts.schemas import ChangePasswordIn, DeleteAccountIn, TokenResponse, UserPublic
from app.actions import erasure, export
from app.core.database import SessionDep
from app.core.errors import NotFound
from app.core.openapi import Tag, errors
from app.core.schemas import IdPath, OptionalIdQuery
from app.events import service as events_service
from app.events.schemas import EventPublic, MeResponse
from app.selfies import service as selfies_service
from app.selfies.schemas import MyPhotos

router = APIRouter(prefix="/api")
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/zip": {"schema": {"type": "string", "contentMediaType": "application/zip"}}}
    }
}


@router.get("/me", tags=[Tag.accounts])
def me(user: CurrentUser, session: SessionDep) -> MeResponse:
    """The signed-in user and the events they are a guest of."""
    events = events_service.user_events(session=session, user_id=user.id)
    return MeResponse(
        **UserPublic.model_validate(user).model_dump(), events=[EventPublic.model_validate(e) for e in events]
    )


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409), tags=[Tag.accounts])
def delete_me(body: DeleteAccountIn, user: CurrentUser, session: SessionDep) -> None:
    """Erase your account and everything of it: selfies, face templates, matches, event
    memberships, files. Your tokens stop working at once. The password is asked again (401
    ``wrong_password``); an organizer's account holds events (409 ``organizer_has_events``)."""
    erasure.erase_user(session=session, user=user, password=body.password)


@router.post("/me/password", responses=errors(401), tags=[Tag.accounts])
def change_password(body: ChangePasswordIn, user: CurrentUser, session: SessionDep) -> TokenResponse:
    """Change your password (the current one is asked again). Every token issued before
    stops working; the answer carries a new one. 401 ``wrong_password``, 422 ``weak_password``."""
    user = accounts_service.change_password(
        session=session, user=user, current=body.current_password, new=body.new_password, context=()
    )
    return accounts_service.token_for(user)


def _zip_response(archive: ZipStream, filename: str) -> StreamingResponse:
    return StreamingResponse(
        iter(archive),
        media_type="application/zip",
        headers={
            "Content-Length": str(len(archive)),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


@router.get("/me/export", response_class=StreamingResponse, responses=_ZIP, tags=[Tag.photos])
def export_my_data(user: CurrentUser, session: SessionDep) -> StreamingResponse:
    """Everything kept about you, as a zip: ``me.json`` (account, consent, events, selfie
    state, selfie changes, matches, "not me" answers) and the photos you are matched in."""
    record = export.export_record(session=session, user=user)
    files = export.photo_files(session=session, user_id=user.id, event_id=None)
    return _zip_response(export.zip_of(files, record), "my-data.zip")


@router.get("/my-photos/download", response_class=StreamingResponse, responses=_ZIP, tags=[Tag.photos])
def download_my_photos(
    user: CurrentUser, session: SessionDep, event_id: OptionalIdQuery = None
) -> StreamingResponse:
    """All the photos you are matched in (of one event with ``event_id``), as one zip."""
    files = export.photo_files(session=session, user_id=user.id, event_id=event_id)
    return _zip_response(export.zip_of(files), "my-photos.zip")


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
