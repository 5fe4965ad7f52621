"""No request can produce a 500 from bad input, and every error has one JSON shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "x" * 100_000,
    "ñandú 🦩 \u202e\ufeff",
    "'; DROP TABLE users; --",
    "\ud7ff",
    "%00%ff",
    "../../etc/passwd",
]
NASTY_VALUES = [*NASTY_STRINGS, None, 0, -1, 1e308, True, [], {}, ["a"], {"a": 1}]

JSON_ENDPOINTS = [
    ("/api/check-event-code", ["code"]),
    ("/api/register-with-event-code", ["event_code", "username", "email", "password", "display_name"]),
    ("/api/login", ["login", "password"]),
    ("/api/events", ["name", "starts_at", "ends_at"]),
    ("/api/join-event", ["code"]),
]


def _assert_error_shape(response: object) -> None:
    r = response
    assert r.status_code < 500, r.text  # type: ignore[attr-defined]
    if r.status_code >= 400:  # type: ignore[attr-defined]
        err = r.json()["error"]  # type: ignore[attr-defined]
        assert isinstance(err["code"], str) and isinstance(err["message"], str)


@pytest.mark.parametrize(("path", "fields"), JSON_ENDPOINTS)
def test_nasty_values_in_any_field_never_cause_a_500(
    client: TestClient, org_headers: dict[str, str], path: str, fields: list[str]
) -> None:
    base = {
        "code": "ABC-2345",
        "event_code": "ABC-2345",
        "username": "someone",
        "email": "s@example.com",
        "password": "a fine password",
        "login": "someone",
        "name": "Party",
    }
    for field in fields:
        for value in NASTY_VALUES:
            body = {**{f: base.get(f) for f in fields if base.get(f) is not None}, field: value}
            _assert_error_shape(client.post(path, json=body, headers=org_headers))


@pytest.mark.parametrize("path", [p for p, _ in JSON_ENDPOINTS])
@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"code": "\\ud800"}', b"1" * 5000, b'{"a":' * 500]
)
def test_malformed_bodies_are_4xx_with_the_error_shape(
    client: TestClient, org_headers: dict[str, str], path: str, raw: bytes
) -> None:
    r = client.post(path, content=raw, headers={**org_headers, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    _assert_error_shape(r)


def test_nasty_query_strings_never_cause_a_500(client: TestClient) -> None:
    for value in NASTY_STRINGS:
        if len(value) > 10_000:
            value = value[:8000]
        r = client.get("/api/check-user-availability", params={"username": value, "email": value})
        _assert_error_shape(r)


def test_a_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    r = client.post(
        "/api/login", content=b"{" + b" " * 200_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_unknown_route_and_wrong_method_use_the_error_shape(client: TestClient) -> None:
    r = client.get("/api/nope")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = client.get("/api/login")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


def test_validation_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/api/login", json={"login": "x"})
    err = r.json()["error"]
    assert r.status_code == 422 and err["code"] == "validation_error"
    assert err["fields"][0]["field"] == "password"
