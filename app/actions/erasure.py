"""Erasures that span domains: a guest's account (GDPR art. 17) and an event.

Every step is an explicit call, so what is erased does not depend on which modules happen
to be imported (``tests/privacy/test_erasure_composition.py`` checks it in a fresh process).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.accounts import guard
from app.accounts import service as accounts_service
from app.accounts.models import User
from app.events import service as events_service
from app.events.models import Event
from app.photos import service as photos_service
from app.photos.models import EventPurge
from app.selfies import service as selfies_service


def erase_user(*, session: Session, user: User, password: str, attempt: guard.Attempt = guard.LOCAL) -> None:
    """Erase the account and everything of it: its selfies (images, templates, their copies
    at the face provider) and matches, then the row (memberships, "not me" answers and selfie
    changes go with it); once committed, its selfie folder goes too. The password is asked
    again (throttled as a login, from ``attempt``); an organizer's account may go once it
    holds no events. Its tokens stop working at once:
    the user they name is gone."""
    holds_events = user.is_organizer and events_service.organizer_has_events(session=session, user_id=user.id)
    accounts_service.check_erasable(user=user, password=password, holds_events=holds_events, attempt=attempt)
    selfies_service.delete_selfies(session=session, user_id=user.id)
    selfies_service.delete_folder_after_commit(session=session, user_id=user.id)
    accounts_service.delete_account(session=session, user_id=user.id)


def delete_event(*, session: Session, event: Event) -> EventPurge:
    """Delete an event: it disappears for its guests at once and a durable job erases its
    photos, faces, matches and memberships (a server that stops half-way finishes it)."""
    return photos_service.start_event_erasure(session=session, event=event)
