"""The API fuzzed against its own OpenAPI document (schemathesis, in process, real database):
every operation, as a guest and as an organizer, with valid and invalid input. No answer may
be a 500, every status must be documented, every body must match its documented schema, and
input the schema allows is never refused as invalid (422), but by the operations of
``DOMAIN_RULES``, whose rules a schema cannot state.

Bounded: ``FUZZ_MAX_EXAMPLES`` (default 30) generated cases per operation and role, on top of
the documented examples and schemathesis' boundary cases. The cases run are printed at the end.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from app.accounts.models import Role
from app.core.config import get_settings
from app.core.database import session_scope
from main import app

pytestmark = pytest.mark.slow  # a few minutes: make test runs it, make test-fast does not

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
#: Operations whose rules go beyond what a schema can say: a password strong enough (zxcvbn, not
#: built on the username or the event), an email address that email-validator accepts and that
#: spells no look-alike, a username or an email to check given at least once, an event's name
#: with a visible character and no control one, its dates between 1970 and 2200. Every other
#: operation accepts what its schema allows (no 422 on schema-valid input).
DOMAIN_RULES = {
    "GET /api/check-user-availability",
    "POST /api/register-with-event-code",
    "POST /api/me/password",
    "POST /api/me/email",
    "POST /api/password/reset",
    "POST /api/events",
    "PATCH /api/events/{event_id}",
}

config = schemathesis.Config.from_dict(
    {
        "seed": int(os.environ.get("FUZZ_SEED", "20261129")),
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "request-timeout": 30.0,
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [
                    "2XX",
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "409",
                    "410",
                    "413",
                    "415",
                    "429",
                    "503",
                    "507",
                ]
            }
        },
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)

#: Cases sent per role and operation (printed by the conftest hook below).
CASES: collections.Counter[str] = collections.Counter()
_PEOPLE: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def people() -> Iterator[None]:
    """An organizer with an event, and a guest of it; throttles off, so that the fuzzer's
    wrong codes and passwords do not turn every later case into a 429 (they are tested in
    test_guessing), and the event stream short."""
    from app.accounts.service import create_user
    from app.core import throttle
    from app.events import service as events_service
    from app.events.models import EventMembership
    from app.events.schemas import EventCreate
    from tests.conftest import truncate_all
    from tools.accounts import PASSWORD

    settings_ = get_settings()
    saved = settings_.model_dump()
    settings_.selfie_events_max_seconds = 0.2
    settings_.throttles_enabled = False
    truncate_all()
    throttle.reset()
    with session_scope() as session:
        organizer = create_user(
            session=session,
            username="fuzzorg",
            email="org@example.com",
            password=PASSWORD,
            role=Role.organizer,
        )
        event = events_service.create_event(
            session=session, organizer=organizer, data=EventCreate(name="Fuzz")
        )
        guest = create_user(
            session=session, username="fuzzguest", email="guest@example.com", password=PASSWORD
        )
        session.add(EventMembership(user_id=guest.id, event_id=event.id))
        session.flush()
        _PEOPLE.update(organizer=organizer.id, guest=guest.id)
    yield
    for name, value in saved.items():
        setattr(settings_, name, value)
    truncate_all()


def _headers(role: str) -> dict[str, str]:
    """A token of the role's user as it is now (a fuzzed logout bumps its token version)."""
    from app.accounts.service import get_user, token_for

    with session_scope() as session:
        user = get_user(session=session, user_id=_PEOPLE[role])
        assert user is not None
        token = token_for(user).access_token
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("role", ["guest", "organizer"])
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any], role: str) -> None:
    CASES[f"{role:9} {case.operation.label}"] += 1
    headers: dict[str, Any] = _headers(role)
    if case.operation.path in ("/api/stats", "/api/db-raw-test", "/metrics"):
        headers["X-Ops-Token"] = get_settings().ops_key()
    checks = CHECKS if case.operation.label in DOMAIN_RULES else [*CHECKS, positive_data_acceptance]
    case.call_and_validate(headers=headers, checks=checks)
