"""Request and response bodies of the accounts endpoints (the wire contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    email_verified: bool = Field(description="The owner opened the link mailed to ``email``.")
    language: str = Field(description="The language of the account's mails: fr or en.")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    user: UserPublic


# The rules the service checks (with its own error codes: invalid_username, invalid_email,
# weak_password), stated in the API document so that a client can follow them.
_USERNAME_RULE: dict[str, Any] = {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{1,30}[A-Za-z0-9]$"}


class RegisterIn(RequestModel):
    event_code: str = Field(min_length=1, max_length=64)
    username: str = Field(
        min_length=1,
        max_length=64,
        description="3 to 32 letters, digits, '.', '_' or '-', starting and ending with a letter or "
        "digit (422 invalid_username otherwise).",
        json_schema_extra=_USERNAME_RULE,
    )
    email: str = Field(
        min_length=1,
        max_length=320,
        description="A deliverable address (422 invalid_email otherwise).",
        json_schema_extra={"format": "email"},
    )
    password: str = Field(
        min_length=1,
        max_length=128,
        description="At least 8 characters, hard to guess (zxcvbn score 3 or more) and not built on the "
        "username, the email or the event's name (422 weak_password otherwise).",
        json_schema_extra={"minLength": 8},
    )
    display_name: VisibleText | None = Field(default=None, max_length=64)
    accept_face_processing: bool = Field(
        default=False, description="Must be true: consent to the processing in GET /api/privacy."
    )


class LoginIn(RequestModel):
    login: str = Field(min_length=1, max_length=320, description="Username or email.")
    password: str = Field(min_length=1, max_length=128)


class PrivacyPolicy(BaseModel):
    version: str
    language: str = Field(description="The language of ``text``: the request's (Accept-Language), or French.")
    text: str = Field(description="The policy as plain text: a line per heading, paragraph or item.")
    controller: str | None = Field(description="Who answers for the guests' data (PRIVACY_CONTROLLER).")
    contact: str | None = Field(description="How to reach them (PRIVACY_CONTACT).")


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


_TOKEN = Field(
    min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", description="From the mailed link."
)


class EmailIn(RequestModel):
    email: str = Field(min_length=3, max_length=320)


class TokenIn(RequestModel):
    token: str = _TOKEN


class ResetPasswordIn(RequestModel):
    token: str = _TOKEN
    password: str = Field(min_length=1, max_length=128)


class LinkSignInIn(RequestModel):
    """The ``token`` of a mailed sign-in link."""

    token: str = _TOKEN


class CodeSignInIn(RequestModel):
    """The ``email`` and the 8-digit ``code`` of a sign-in mail."""

    email: str = Field(min_length=3, max_length=320)
    code: str = Field(pattern=r"^\s*[0-9]{4}\s?[0-9]{4}\s*$", max_length=16, examples=["1234 5678"])


EmailSignInIn = LinkSignInIn | CodeSignInIn


class ChangeEmailIn(RequestModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class Accepted(BaseModel):
    """A request that may mail a link: the same answer whether the account exists or not."""

    detail: str


class EmailVerified(BaseModel):
    email: str
    email_verified: Literal[True] = True
