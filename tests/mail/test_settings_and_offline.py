"""Mail without an SMTP server (each message an .eml file under DATA_DIR/mail, and a log line),
implicit TLS, and the settings that must be right before anything is sent."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.mail.transport import parse_smtp_url
from tests.helpers import drain_jobs, login, make_event, make_organizer, register
from tests.mail.conftest import PUBLIC_URL
from tools.harness.smtp import running_smtp


def test_without_smtp_url_messages_are_written_to_a_folder_and_logged(
    client: TestClient,
    session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "smtp_url", "")
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    org = login(client, make_organizer(session)["username"])
    assert register(client, make_event(client, org)["code"], "offline").status_code == 201
    with caplog.at_level(logging.INFO, logger="app.mail"):
        drain_jobs()
    (path,) = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "offline@example.com" and "/verify-email/" in str(message.get_body(("plain",)))
    assert any(
        "offline@example.com" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records
    )


def test_implicit_tls_delivers_too(
    client: TestClient, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_smtp(tmp_path, tls="implicit") as server:
        settings = get_settings()
        assert server.url.startswith("smtps://")
        monkeypatch.setattr(settings, "smtp_url", server.url)
        monkeypatch.setattr(settings, "smtp_ca_file", server.ca_file)
        monkeypatch.setattr(settings, "public_url", PUBLIC_URL)
        org = login(client, make_organizer(session)["username"])
        assert register(client, make_event(client, org)["code"], "tls").status_code == 201
        drain_jobs()
        assert [str(m["To"]) for m in server.wait_for(1)] == ["tls@example.com"]


def test_a_server_whose_certificate_is_not_trusted_gets_nothing(
    client: TestClient, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_smtp(tmp_path) as server:
        settings = get_settings()
        monkeypatch.setattr(settings, "smtp_url", server.url)
        monkeypatch.setattr(settings, "smtp_ca_file", None)  # the system's authorities only
        monkeypatch.setattr(settings, "public_url", PUBLIC_URL)
        org = login(client, make_organizer(session)["username"])
        assert register(client, make_event(client, org)["code"], "mitm").status_code == 201
        drain_jobs()
        assert server.messages() == []


def test_smtp_url_needs_public_url() -> None:
    with pytest.raises(ValidationError, match="PUBLIC_URL"):
        Settings(smtp_url="smtp://u:p@mail.example.org:587")
    assert Settings(smtp_url="smtp://u:p@mail.example.org:587", public_url="https://photos.example.org")


def test_smtp_urls_say_how_to_connect() -> None:
    starttls = parse_smtp_url("smtp://user%40x:p%3Ass@mail.example.org")
    assert (starttls.port, starttls.starttls, starttls.implicit_tls) == (587, True, False)
    assert (starttls.username, starttls.password) == ("user@x", "p:ss")
    implicit = parse_smtp_url("smtps://u:p@mail.example.org")
    assert (implicit.port, implicit.starttls, implicit.implicit_tls) == (465, False, True)
    local = parse_smtp_url("smtp://127.0.0.1:1025?starttls=false")
    assert (local.starttls, local.username) == (False, None)
    with pytest.raises(ValueError, match="this machine"):
        parse_smtp_url("smtp://u:p@mail.example.org:25?starttls=false")
    with pytest.raises(ValueError, match="smtp://"):
        parse_smtp_url("http://mail.example.org")


def test_message_ids_do_not_collide_however_many_are_made_at_once() -> None:
    from app.mail.service import _message_id

    settings = get_settings()
    ids = {_message_id(settings) for _ in range(20_000)}
    assert len(ids) == 20_000 and all(i.startswith("<") and i.endswith(">") and "@" in i for i in ids)
