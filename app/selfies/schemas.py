"""Bodies of the selfie endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.schemas import ErrorBody

# checking: queued or being checked; rejected: refused, with the reason in ``error``;
# matching: the face passed, photos are being matched; ready: matches are up to date.
PublicStatus = Literal["checking", "rejected", "matching", "ready"]


class SelfieAccepted(BaseModel):
    selfie_id: int
    status: PublicStatus
    queue_position: int | None = Field(
        description="While checking: 1 when this selfie is next (or being checked), 2 when one is ahead..."
    )


class SelfieState(BaseModel):
    selfie_id: int
    status: PublicStatus
    error: ErrorBody | None = Field(
        description="Why the selfie was rejected (what to do about it); while checking or matching, "
        "why it takes longer than usual. A rejected selfie's ``code`` is one of: ``no_face``, "
        "``multiple_faces``, ``face_too_small``, ``face_hidden``, ``face_turned``, ``too_blurry``, "
        "``too_dark`` (the face check); ``unsupported_format`` (a file that cannot be decoded, a "
        "truncated JPEG included, or a 16-bit image); ``image_too_large`` (more pixels than a "
        "selfie may have); ``selfie_changes_exhausted`` (the daily limit of changes was reached "
        "while it waited); ``original_missing`` (its file was lost before the check)."
    )
    queue_position: int | None
    matches: int = Field(description="How many event photos you are matched in.")
    uploaded_at: datetime
    checked_at: datetime | None
    matched_at: datetime | None
    needs_new_selfie: bool = Field(
        default=False,
        description="The service's face model changed since this selfie was checked: its photos "
        "stay, but new photos are found only with a new selfie.",
    )


class MatchedPhoto(BaseModel):
    id: int
    event_id: int
    thumbnail_url: str
    url: str
    distance: float
    matched_at: datetime = Field(description="When the match was found (for 'new since your last visit').")


class MyPhotos(BaseModel):
    photos: list[MatchedPhoto]


class EventGuest(BaseModel):
    user_id: int
    username: str
    display_name: str | None
    joined_at: datetime
    selfie_status: PublicStatus | None
    selfie_changes: int = Field(description="Times the guest replaced their selfie (ever).")
    last_selfie_change_at: datetime | None


class EventGuests(BaseModel):
    guests: list[EventGuest]
