"""The JSON API: one module per resource, each a thin layer over the domains' services and
the cross-domain actions (``app.actions``). ``router`` gathers them for the app.

- ``auth``: availability, registration with an event code, login (password, mailed link or
  code), logout, address verification, password reset, privacy policy;
- ``me``: the signed-in guest's account, export and matched photos;
- ``mail``: notification switches, one-click unsubscribe, the address and its verification,
  an event's notifications for its organizer;
- ``events``: codes, joining, the organizer's events and guests;
- ``photos``: the organizer's uploads and listing, serving a photo;
- ``selfie``: the guest's selfie and its state;
- ``ops``: health, database probe, statistics, metrics.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api import auth, events, mail, me, ops, photos, selfie

router = APIRouter()
for module_router in (
    ops.router,
    ops.protected,
    auth.router,
    me.router,
    mail.router,
    events.router,
    photos.router,
    selfie.router,
):
    router.include_router(module_router)
