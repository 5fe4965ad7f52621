"""Bodies of the photo endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.schemas import ErrorBody, RequestModel


class AcceptedPhoto(BaseModel):
    id: int
    filename: str
    duplicate: bool = False  # the event already had these bytes: ``id`` is that photo


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


# --- direct uploads to the bucket -----------------------------------------------------------

#: Files one request may sign (the dashboard sends a batch in slices of this size or fewer).
SIGN_BATCH = 500


class UploadFileIn(RequestModel):
    """A file the browser is about to send, described before any byte of it moves."""

    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=1, le=2**40)  # 1 TiB: far above any limit, exact as a JSON number
    content_type: str = Field(min_length=1, max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the file's bytes, in hex.")


class UploadsIn(RequestModel):
    files: list[UploadFileIn] = Field(min_length=1, max_length=SIGN_BATCH)


class UploadPartOut(BaseModel):
    number: int
    url: str


class UploadSlot(BaseModel):
    """One file's answer: ``upload`` (send it to ``url`` with ``headers``, or in ``parts`` of
    ``part_bytes`` under ``upload_id``, then complete), ``duplicate`` (already in the event:
    ``photo_id``) or ``rejected`` (``error``)."""

    name: str
    status: Literal["upload", "duplicate", "rejected"]
    photo_id: int | None = None
    key: str | None = None
    method: str = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    upload_id: str | None = None
    part_bytes: int | None = None
    parts: list[UploadPartOut] = Field(default_factory=list)
    expires_in: int | None = None
    error: ErrorBody | None = None


class UploadsOut(BaseModel):
    files: list[UploadSlot]


class UploadedPartIn(RequestModel):
    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200)


class CompleteUploadIn(RequestModel):
    """For a multipart upload: its id and each part's ETag (the PUT's answer header)."""

    upload_id: str | None = Field(default=None, min_length=1, max_length=1024)
    parts: list[UploadedPartIn] = Field(default_factory=list, max_length=10_000)


class CompletedUpload(BaseModel):
    id: int
    status: str
