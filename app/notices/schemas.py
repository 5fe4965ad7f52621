"""Request and response bodies of the notification endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from app.core.schemas import MAX_DB_INT, RequestModel

EventId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]


class EventSwitch(BaseModel):
    event_id: int
    name: str
    enabled: bool


class NotificationSettings(BaseModel):
    """``enabled``: the account's switch; each event has its own. A mail is sent only when
    both are on and the address is verified (``email_verified``)."""

    enabled: bool
    email_verified: bool
    events: list[EventSwitch]


class NotificationsPatch(RequestModel):
    """Only the switches given change; ``events`` maps an event's id to its switch."""

    enabled: bool | None = None
    events: dict[EventId, bool] = Field(
        default_factory=dict,
        max_length=1000,
        json_schema_extra={"propertyNames": {"pattern": "^[1-9][0-9]{0,17}$"}},
    )


class SentNotification(BaseModel):
    username: str
    photos: int
    status: str = Field(description="pending, running (being sent), done (sent) or failed.")
    created_at: datetime
    sent_at: datetime | None


class EventNotifications(BaseModel):
    """What "your photos are here" did for an event: messages sent, waiting to be sent or
    refused for good, guests whose message is still to be written (their batch has not
    settled: the quiet period), and the latest messages."""

    sent: int
    waiting: int
    failed: int
    guests_waiting: int
    next_due_at: datetime | None
    last_sent_at: datetime | None
    latest: list[SentNotification]


class NotifyNowResponse(BaseModel):
    guests: int = Field(description="Guests with new photos whose message is now written at once.")
