"""Bodies of the selfie endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from app.core.schemas import ErrorBody

PublicStatus = Literal["processing", "ready", "failed"]


class SelfieAccepted(BaseModel):
    selfie_id: int
    status: PublicStatus


class SelfieState(BaseModel):
    selfie_id: int
    status: PublicStatus
    reason: ErrorBody | None
    matches: int
    uploaded_at: datetime
    matched_at: datetime | None


class MatchedPhoto(BaseModel):
    id: int
    event_id: int
    thumbnail_url: str
    url: str
    distance: float


class MyPhotos(BaseModel):
    photos: list[MatchedPhoto]
