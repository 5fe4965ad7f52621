"""Reset and sign-in requests, as an attacker would make them: they cannot tell which accounts
exist, flood a mailbox, or burn the SMTP quota; a code cannot be guessed."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import get_settings
from tests.helpers import drain_jobs, login, make_event, make_organizer, register
from tests.mail.conftest import sent_to
from tools.harness.smtp import SmtpServer
from tools.mailbox import text_body

ROUTES = ["/api/password/forgot", "/api/login/email"]


@pytest.fixture
def victim(client: TestClient, session: Session, smtp: SmtpServer) -> str:
    org = login(client, make_organizer(session)["username"])
    assert register(client, make_event(client, org)["code"], "victim").status_code == 201
    drain_jobs()
    return "victim@example.com"


@pytest.mark.parametrize("route", ROUTES)
def test_answers_do_not_tell_whether_an_account_exists_even_past_the_limits(
    client: TestClient, victim: str, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "throttle_mails_per_account", "2/hour")
    answers = set()
    for _ in range(4):  # past the account's limit for the victim
        for email in (victim, "nobody@example.com", "VICTIM@example.com"):
            r = client.post(route, json={"email": email})
            answers.add((r.status_code, r.text, tuple(sorted(k for k in r.headers if k != "content-length"))))
    assert len(answers) == 1, answers


@pytest.mark.parametrize("route", ROUTES)
def test_a_mailbox_gets_at_most_the_accounts_limit_however_many_requests(
    client: TestClient, victim: str, smtp: SmtpServer, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(sent_to(smtp, victim))
    monkeypatch.setattr(get_settings(), "throttle_mail_requests_per_address", "1000/hour")
    for _ in range(12):
        assert client.post(route, json={"email": victim}).status_code == 202
    drain_jobs()
    assert len(sent_to(smtp, victim)) - before == 5  # THROTTLE_MAILS_PER_ACCOUNT: 5/hour


def test_one_client_is_refused_past_its_limit_whatever_address_it_asks_about(
    client: TestClient, victim: str
) -> None:
    statuses = [
        client.post("/api/password/forgot", json={"email": f"probe{i}@example.com"}).status_code
        for i in range(20)
    ]
    assert statuses == [202] * 20
    for email in ("probe@example.com", victim):
        r = client.post("/api/login/email", json={"email": email})
        assert (r.status_code, r.json()["error"]["code"]) == (429, "too_many_requests")
        assert int(r.headers["Retry-After"]) > 0


def test_the_whole_service_mails_no_more_links_than_its_cap(
    client: TestClient, session: Session, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "throttle_link_mails_total", "3/hour")
    monkeypatch.setattr(settings, "throttle_mail_requests_per_address", "1000/hour")
    org = login(client, make_organizer(session)["username"])
    code = make_event(client, org)["code"]
    for i in range(6):
        assert register(client, code, f"target{i}").status_code == 201
    drain_jobs()
    before = len(smtp.messages())
    for i in range(6):
        assert (
            client.post("/api/password/forgot", json={"email": f"target{i}@example.com"}).status_code == 202
        )
    drain_jobs()
    assert len(smtp.messages()) - before == 3


def test_sign_in_codes_allow_at_most_five_guesses_each_and_five_codes_an_hour(
    client: TestClient, victim: str, smtp: SmtpServer
) -> None:
    for _ in range(5):
        assert client.post("/api/login/email", json={"email": victim}).status_code == 202
        drain_jobs()
        code = re.search(r"\b(\d{4}) (\d{4})\b", text_body(sent_to(smtp, victim)[-1]))
        assert code
        right = code.group(1) + code.group(2)
        wrong = f"{(int(right) + 1) % 10**8:08d}"
        for _guess in range(5):
            r = client.post("/api/login/email/confirm", json={"email": victim, "code": wrong})
            assert r.status_code == 400
        dead = client.post("/api/login/email/confirm", json={"email": victim, "code": right})
        assert (dead.status_code, dead.json()["error"]["code"]) == (400, "invalid_token")
    mailed = len(sent_to(smtp, victim))
    assert client.post("/api/login/email", json={"email": victim}).status_code == 202
    drain_jobs()
    assert len(sent_to(smtp, victim)) == mailed  # no sixth code this hour: 25 guesses among 10^8
