"""What the service mails, seen from the account and the event: "your photos are here"
switches (and the one-click unsubscribe of RFC 8058), changing and verifying the address, and
for an organizer what the event's notifications did, with "notify the guests now"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from app.accounts import links
from app.accounts.deps import CurrentOrganizer, CurrentUser, LoginAttempt
from app.accounts.schemas import Accepted, ChangeEmailIn, UserPublic
from app.core.database import SessionDep
from app.core.errors import NotFound
from app.core.openapi import Tag, errors
from app.core.schemas import IdPath
from app.events import service as events_service
from app.notices import service as notices_service
from app.notices.schemas import (
    EventNotifications,
    NotificationSettings,
    NotificationsPatch,
    NotifyNowResponse,
)

router = APIRouter(prefix="/api", tags=[Tag.notifications])
UnsubscribeToken = Annotated[str, Path(min_length=3, max_length=128, pattern=r"^[0-9-]+\.[A-Za-z0-9_-]+$")]


@router.get("/me/notifications")
def get_notifications(user: CurrentUser, session: SessionDep) -> NotificationSettings:
    """Your "your photos are here" switches: the account's, and each event's."""
    return notices_service.switches(session=session, user=user)


@router.patch("/me/notifications", responses=errors(404))
def patch_notifications(
    body: NotificationsPatch, user: CurrentUser, session: SessionDep
) -> NotificationSettings:
    """Turn the account's switch (``enabled``) or events' switches (``events``: id to on/off)
    on or off, at once. 404 ``event_not_found`` for an event you are not a guest of."""
    return notices_service.set_switches(session=session, user=user, patch=body)


@router.post("/unsubscribe/{token}", responses=errors(404))
def unsubscribe(token: UnsubscribeToken, session: SessionDep) -> Accepted:
    """One-click unsubscribe (RFC 8058), the URL of a notification's ``List-Unsubscribe``
    header: no session needed, the signed token says whose switch of which event goes off.
    404 ``not_found`` for a token that is not ours."""
    if notices_service.unsubscribe(session=session, token=token) is None:
        raise NotFound("This unsubscribe link is not valid.")
    return Accepted(detail="You will get no more messages about new photos of this event.")


@router.post("/me/email", responses=errors(401, 409, 429), tags=[Tag.accounts])
def change_email(
    body: ChangeEmailIn, user: CurrentUser, session: SessionDep, attempt: LoginAttempt
) -> UserPublic:
    """Change your address (the password is asked again, throttled as a login: 401
    ``wrong_password``). It is unverified until you open the link mailed to it; no
    notification is sent to it meanwhile. 409 ``email_taken``, 422 ``invalid_email``."""
    changed = links.change_email(
        session=session, user=user, email=body.email, password=body.password, attempt=attempt
    )
    return UserPublic.model_validate(changed)


@router.post(
    "/me/email/verification", status_code=status.HTTP_202_ACCEPTED, responses=errors(429), tags=[Tag.accounts]
)
def resend_verification(user: CurrentUser, session: SessionDep) -> Accepted:
    """Mail a new verification link to your address (nothing if it is verified already);
    429 past the account's mail limit."""
    links.resend_verification(session=session, user=user)
    return Accepted(detail="A new link is on its way to your address.")


@router.get("/events/{event_id}/notifications", responses=errors(403, 404))
def event_notifications(
    event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep
) -> EventNotifications:
    """What "your photos are here" did for one of your events: messages sent, waiting or
    refused, guests whose message waits for the batch to settle, and the latest messages."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    return notices_service.organizer_summary(session=session, event_id=event.id)


@router.post("/events/{event_id}/notify", responses=errors(403, 404))
def notify_now(event_id: IdPath, organizer: CurrentOrganizer, session: SessionDep) -> NotifyNowResponse:
    """Notify the guests now: guests with new photos get their message without waiting for
    the quiet period (never more often than the minimum interval)."""
    event = events_service.get_managed_event(session=session, organizer=organizer, event_id=event_id)
    return NotifyNowResponse(guests=notices_service.notify_now(session=session, event_id=event.id))
