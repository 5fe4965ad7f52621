""" "Your photos are here": photos matched after a guest's selfie are told by one message per
guest and event once the batch has settled, only to a verified address with both switches on,
with the number of photos and a link, never a photo; one-click unsubscribe; the organizer's
"notify now" and summary. Real photos, the real face jobs and a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from fastapi.testclient import TestClient

from app.core.config import get_settings
from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs
from tests.mail.conftest import PUBLIC_URL, sent_to
from tests.privacy.erasure import rows_naming
from tools.harness.smtp import SmtpServer
from tools.mailbox import html_body, link_with, text_body
from tools.photos import fixture_bytes, side_by_side


@pytest.fixture
def prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """No quiet period and no minimum interval: a message as soon as its batch is matched."""
    settings = get_settings()
    monkeypatch.setattr(settings, "notify_quiet_seconds", 0)
    monkeypatch.setattr(settings, "notify_min_interval_seconds", 0)


@pytest.fixture
def gala(client: TestClient, smtp: SmtpServer) -> Iterator[IndexedEvent]:
    event = IndexedEvent(client, name="Gala 2026")
    event.upload({"b.jpg": fixture_bytes("biden.jpg")}, index=True)
    yield event


def _verified_guest(gala: IndexedEvent, smtp: SmtpServer, selfie: str = "obama.jpg") -> dict[str, str]:
    """A guest of the gala whose address is verified and whose selfie is matched."""
    guest = gala.guest()
    name = f"guest{gala.guests}"
    drain_jobs()
    link = link_with(sent_to(smtp, f"{name}@example.com")[-1], "/verify-email/")
    assert gala.client.post("/api/email/verify", json={"token": link.rsplit("/", 1)[1]}).status_code == 200
    assert gala.selfie(guest, fixture_bytes(selfie))["status"] == "ready"
    return guest


def _notifications(smtp: SmtpServer, address: str) -> list[EmailMessage]:
    return [m for m in sent_to(smtp, address) if "List-Unsubscribe" in m]


def test_new_photos_of_a_guest_are_told_in_one_message_with_their_number_and_a_link(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    _verified_guest(gala, smtp)
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg"), "a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    (mail,) = _notifications(smtp, "guest1@example.com")
    assert mail["Subject"] == "Nouvelles photos de vous : Gala 2026"
    text = text_body(mail)
    assert "2 nouvelles photos de vous ont été ajoutées à Gala 2026." in text
    assert link_with(mail, "/photos?event=") == f"{PUBLIC_URL}/photos?event={gala.event['id']}"
    # No photo and no face: one text part and one HTML part, with no image in either.
    assert [p.get_content_type() for p in mail.walk()] == ["multipart/alternative", "text/plain", "text/html"]
    assert "<img" not in html_body(mail) and "/api/photos/" not in text
    unsubscribe = mail["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.startswith(f"{PUBLIC_URL}/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_later_batch_tells_only_the_photos_not_told_yet(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    _verified_guest(gala, smtp)
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    first, second = _notifications(smtp, "guest1@example.com")
    assert "1 nouvelle photo de vous a été ajoutée" in text_body(first)
    assert "1 nouvelle photo de vous a été ajoutée" in text_body(second)


def test_photos_matched_when_the_selfie_was_taken_are_not_told_again(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    guest = _verified_guest(gala, smtp)
    assert gala.my_photos(guest) == {"a2.jpg"}  # seen on the screen, at the party
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    (mail,) = _notifications(smtp, "guest1@example.com")
    assert "1 nouvelle photo de vous a été ajoutée" in text_body(mail)


def test_a_batch_is_told_once_it_has_settled_not_photo_by_photo(
    gala: IndexedEvent, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "notify_quiet_seconds", 3600)
    _verified_guest(gala, smtp)
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg"), "a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    assert _notifications(smtp, "guest1@example.com") == []  # the quiet period has not passed
    summary = gala.client.get(f"/api/events/{gala.event['id']}/notifications", headers=gala.org).json()
    assert summary["guests_waiting"] == 1 and summary["sent"] == 0 and summary["next_due_at"]
    # The organizer does not want to wait: "notify the guests now".
    r = gala.client.post(f"/api/events/{gala.event['id']}/notify", headers=gala.org)
    assert r.status_code == 200 and r.json() == {"guests": 1}
    drain_jobs()
    (mail,) = _notifications(smtp, "guest1@example.com")
    assert "2 nouvelles photos" in text_body(mail)
    summary = gala.client.get(f"/api/events/{gala.event['id']}/notifications", headers=gala.org).json()
    assert summary["sent"] == 1 and summary["guests_waiting"] == 0 and summary["failed"] == 0
    assert summary["latest"][0]["username"] == "guest1" and summary["latest"][0]["photos"] == 2
    guest_view = gala.client.get(f"/api/events/{gala.event['id']}/notifications", headers=gala.guest())
    assert guest_view.status_code == 403


def test_at_most_one_message_per_guest_and_event_within_the_minimum_interval(
    gala: IndexedEvent, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "notify_quiet_seconds", 0)
    monkeypatch.setattr(settings, "notify_min_interval_seconds", 3600)
    _verified_guest(gala, smtp)
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    gala.client.post(f"/api/events/{gala.event['id']}/notify", headers=gala.org)
    drain_jobs()
    assert len(_notifications(smtp, "guest1@example.com")) == 1
    summary = gala.client.get(f"/api/events/{gala.event['id']}/notifications", headers=gala.org).json()
    assert summary["guests_waiting"] == 1  # told later, once the interval has passed


def test_an_unverified_address_gets_no_notification(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    guest = gala.guest()
    assert gala.selfie(guest, fixture_bytes("obama.jpg"))["status"] == "ready"
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    assert _notifications(smtp, "guest1@example.com") == []
    assert [m["Subject"] for m in sent_to(smtp, "guest1@example.com")] == ["Confirmez votre adresse e-mail"]


def test_one_click_unsubscribe_needs_no_session_and_is_honoured_at_once(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    guest = _verified_guest(gala, smtp)
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    (mail,) = _notifications(smtp, "guest1@example.com")
    path = httpx.URL(mail["List-Unsubscribe"].strip().strip("<>")).path
    anonymous = TestClient(gala.client.app)
    r = anonymous.post("/api/" + path.lstrip("/"), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text
    switches = gala.client.get("/api/me/notifications", headers=guest).json()
    assert switches["enabled"] is True and switches["events"][0]["enabled"] is False
    forged = anonymous.post("/api/unsubscribe/" + path.rsplit("/", 1)[1][:-2] + "xx")
    assert forged.status_code == 404
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    assert len(_notifications(smtp, "guest1@example.com")) == 1


def test_the_account_switch_turns_every_event_off_and_on(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    guest = _verified_guest(gala, smtp)
    off = gala.client.patch("/api/me/notifications", json={"enabled": False}, headers=guest)
    assert off.status_code == 200 and off.json()["enabled"] is False
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    assert _notifications(smtp, "guest1@example.com") == []
    on = gala.client.patch("/api/me/notifications", json={"enabled": True}, headers=guest)
    assert on.json()["enabled"] is True
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    (mail,) = _notifications(smtp, "guest1@example.com")
    assert "2 nouvelles photos" in text_body(mail)  # what was not told stays new
    stranger = gala.client.patch("/api/me/notifications", json={"events": {"999999": False}}, headers=guest)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "event_not_found")


def test_changing_the_address_re_verifies_it_before_any_notification(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    from tools.accounts import PASSWORD

    guest = _verified_guest(gala, smtp)
    r = gala.client.post(
        "/api/me/email", json={"email": "new@example.com", "password": PASSWORD}, headers=guest
    )
    assert r.status_code == 200 and r.json()["email_verified"] is False
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    assert _notifications(smtp, "new@example.com") == [] and _notifications(smtp, "guest1@example.com") == []
    link = link_with(sent_to(smtp, "new@example.com")[-1], "/verify-email/")
    assert gala.client.post("/api/email/verify", json={"token": link.rsplit("/", 1)[1]}).status_code == 200
    gala.upload({"a3.jpg": fixture_bytes("obama3.jpg")}, index=True)
    drain_jobs()
    assert len(_notifications(smtp, "new@example.com")) == 1


def test_guests_of_one_photo_are_each_told_of_it(gala: IndexedEvent, smtp: SmtpServer, prompt: None) -> None:
    _verified_guest(gala, smtp, "obama.jpg")
    _verified_guest(gala, smtp, "biden.jpg")
    gala.upload({"ab.jpg": side_by_side("obama3.jpg", "biden.jpg")}, index=True)
    drain_jobs()
    assert len(_notifications(smtp, "guest1@example.com")) == 1
    assert len(_notifications(smtp, "guest2@example.com")) == 1


def test_a_guest_taken_out_of_the_event_leaves_nothing_to_tell(
    gala: IndexedEvent, smtp: SmtpServer, prompt: None
) -> None:
    guest = _verified_guest(gala, smtp)
    user_id = gala.client.get("/api/me", headers=guest).json()["id"]
    gala.upload({"a2.jpg": fixture_bytes("obama2.jpg")}, index=True)
    drain_jobs()
    assert {"told_photos.user_id", "guest_notices.user_id"} <= rows_naming(("user", user_id)).keys()
    r = gala.client.delete(f"/api/events/{gala.event['id']}/guests/{user_id}", headers=gala.org)
    assert r.status_code == 204
    assert not {"told_photos.user_id", "guest_notices.user_id"} & rows_naming(("user", user_id)).keys()
