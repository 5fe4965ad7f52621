"""Request and response bodies of the events endpoints (the wire contract)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, model_validator

from app.accounts.schemas import UserPublic
from app.core.schemas import PlausibleDate, RequestModel, VisibleText


class EventPublic(BaseModel):
    """What a guest may see of an event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    starts_at: datetime | None
    ends_at: datetime | None


_PURGE_AT = (
    "When the event's photos, faces and matches are erased: its end (ends_at), or when it has "
    "none its last upload, plus retention_days. Null only while an event without an end has "
    "no photo."
)


class GuestEvent(EventPublic):
    """An event of the signed-in guest (``GET /api/me``), with its erasure date."""

    retention_days: int
    purge_at: datetime | None = Field(default=None, description=_PURGE_AT)


class EventInvitation(GuestEvent):
    """An event as its page shows it to someone who may join it: who organizes it and when
    its photos are erased (``purge_at``, or the rule while it has none)."""

    organizer: str


class PhotoCounts(BaseModel):
    pending: int = 0
    processing: int = 0
    indexed: int = 0
    failed: int = 0


class FaceReembedProgress(BaseModel):
    """The event's faces being described again after the face model changed (matching goes
    on meanwhile; docs/FACES.md, "Switching the recognizer")."""

    model: str
    status: str
    photos_done: int
    photos_total: int


class EventOrganizerView(EventPublic):
    is_open: bool
    retention_days: int
    organizer_id: int
    created_at: datetime
    join_token: str = Field(exclude=True)
    guests: int = 0
    photos: PhotoCounts | None = None
    faces: int | None = None
    faces_reembed: FaceReembedProgress | None = None
    purge_at: datetime | None = Field(default=None, description=_PURGE_AT)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def join_path(self) -> str:
        """The join link for the event's QR code, on this server: ``/e/<token>``."""
        return f"/e/{self.join_token}"


class CheckEventCodeIn(RequestModel):
    code: str = Field(min_length=1, max_length=64)


class CheckEventCodeResponse(BaseModel):
    valid: bool = True
    event: EventPublic


class JoinEventIn(RequestModel):
    code: str = Field(min_length=1, max_length=64)


class JoinEventResponse(BaseModel):
    joined: bool
    event: EventPublic


class EventCreate(RequestModel):
    name: VisibleText = Field(min_length=1, max_length=120)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Days after the end when photos are purged (EVENT_RETENTION_DAYS).",
    )
    starts_at: Annotated[AwareDatetime | None, PlausibleDate] = None
    ends_at: Annotated[AwareDatetime | None, PlausibleDate] = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> EventCreate:
        if self.starts_at and self.ends_at and self.ends_at < self.starts_at:
            raise ValueError("ends_at must not be before starts_at")
        return self


class EventSettings(RequestModel):
    retention_days: int = Field(ge=1, le=3650, description="Days after the end when photos are purged.")


class EventList(BaseModel):
    events: list[EventOrganizerView]


class MeResponse(UserPublic):
    events: list[GuestEvent]


class EventBanPublic(BaseModel):
    """A guest the organizer removed and barred from the event."""

    user_id: int
    username: str
    display_name: str | None
    barred_at: datetime


class EventBanList(BaseModel):
    bans: list[EventBanPublic]

    @classmethod
    def of(cls, rows: Sequence[tuple[Any, Any]]) -> EventBanList:
        """From ``events.service.list_bans``: (ban, user) rows."""
        return cls(
            bans=[
                EventBanPublic(
                    user_id=user.id,
                    username=user.username,
                    display_name=user.display_name,
                    barred_at=ban.created_at,
                )
                for ban, user in rows
            ]
        )
