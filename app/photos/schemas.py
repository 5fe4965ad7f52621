"""Bodies of the photo endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.core.schemas import ErrorBody


class AcceptedPhoto(BaseModel):
    id: int
    filename: str


class RejectedPhoto(BaseModel):
    filename: str
    error: ErrorBody


class PhotoUploadResponse(BaseModel):
    accepted: list[AcceptedPhoto]
    rejected: list[RejectedPhoto]


class PhotoOut(BaseModel):
    id: int
    event_id: int
    filename: str
    status: str
    faces: int
    width: int
    height: int
    attempts: int
    error: ErrorBody | None
    created_at: datetime
    indexed_at: datetime | None
    thumbnail_url: str
    url: str


class PhotoList(BaseModel):
    photos: list[PhotoOut]
