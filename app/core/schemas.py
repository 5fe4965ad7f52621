"""Base model for request bodies, and the bounds every id, offset, date and name must keep.

Bounded at the schema, a value out of range is a 422 with the field's name, never a 500 from
the driver (an integer beyond 64 bits, a date that overflows when converted to UTC).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

#: The largest value a BIGINT column (and SQLite's INTEGER) can hold.
MAX_DB_INT = 2**63 - 1
#: Deepest a listing may be paged.
MAX_OFFSET = 1_000_000

IdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_DB_INT)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

# Invisible characters that reorder or hide text (bidirectional overrides and isolates).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible_text(value: str) -> str:
    value = value.strip()
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in value):
        raise ValueError("must not contain control characters")
    if not any(unicodedata.category(c)[0] not in "CZ" for c in value):
        raise ValueError("must contain visible characters")
    return value


#: A name shown to people: stripped, with something visible, no control characters.
VisibleText = Annotated[str, AfterValidator(_visible_text)]


def _plausible_date(value: datetime | None) -> datetime | None:
    # Checked on the year as given, before any conversion that could overflow.
    if value is not None and not 1970 <= value.year <= 2200:
        raise ValueError("must be between the years 1970 and 2200")
    return value


#: What the schema says of every string of a request: no NUL character (``RequestModel``).
_NO_NUL = r"^[^\u0000]*$"


def _strings_without_nul(schema: dict[str, Any]) -> None:
    """State the NUL rule in the schema, so that a client (and a fuzzer) knows it: each string
    property without a pattern of its own gets ``_NO_NUL``."""
    for prop in schema.get("properties", {}).values():
        for option in [prop, *prop.get("anyOf", [])]:
            if option.get("type") == "string" and "pattern" not in option and "format" not in option:
                option["pattern"] = _NO_NUL


class RequestModel(BaseModel):
    """Rejects NUL characters in every string field: PostgreSQL cannot store or even
    compare them, so they would otherwise surface as a driver error instead of a 422."""

    model_config = ConfigDict(json_schema_extra=_strings_without_nul)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


PlausibleDate = AfterValidator(_plausible_date)


class ErrorBody(BaseModel):
    code: str
    message: str
