"""Base model for request bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator


class RequestModel(BaseModel):
    """Rejects NUL characters in every string field: PostgreSQL cannot store or even
    compare them, so they would otherwise surface as a driver error instead of a 422."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ErrorBody(BaseModel):
    code: str
    message: str
