"""Request and response bodies of the accounts endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from app.core.schemas import RequestModel, VisibleText


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    display_name: str | None
    role: str
    created_at: datetime
    last_login_at: datetime | None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    user: UserPublic


class RegisterIn(RequestModel):
    event_code: str = Field(min_length=1, max_length=64)
    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)
    display_name: VisibleText | None = Field(default=None, max_length=64)
    accept_face_processing: bool = Field(
        default=False, description="Must be true: consent to the processing in GET /api/privacy."
    )


class LoginIn(RequestModel):
    login: str = Field(min_length=1, max_length=320, description="Username or email.")
    password: str = Field(min_length=1, max_length=128)


class PrivacyPolicy(BaseModel):
    version: str
    text: str = Field(description="Markdown.")


class DeleteAccountIn(RequestModel):
    password: str = Field(min_length=1, max_length=128)


class ChangePasswordIn(RequestModel):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class Availability(BaseModel):
    value: str
    available: bool
    reason: Literal["taken", "invalid"] | None = None
    message: str | None = None


class AvailabilityResponse(RootModel[dict[Literal["username", "email"], Availability]]):
    """Only the fields asked for are present."""
