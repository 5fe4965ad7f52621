"""The limits on a guest's selfies hold: every change counts toward the day's limit (an accepted
replacement or a deletion, never a refused selfie), with the true ``Retry-After``, atomically
under concurrency; a guest keeps a bounded number of live streams; a photo a guest may no
longer see leaves the browser's cache within minutes; an erased account leaves no folder."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from app.core import storage
from app.core.config import get_settings
from app.core.database import session_scope, utcnow
from app.selfies.models import Selfie, SelfieChange, SelfieStatus
from tests.fixtures.events import Party
from tests.helpers import ThreadWorker, bearer, drain_jobs, register, selfie_verdict
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes

FACE = fixture_bytes("obama.jpg")


def _no_face() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 20, 24)).save(out, "JPEG")  # a dark venue, no face
    return out.getvalue()


def _upload(client: TestClient, headers: dict[str, str], data: bytes = FACE) -> Any:
    return client.post("/api/upload-selfie", files={"file": ("s.jpg", data)}, headers=headers)


def _changes_seen_by_organizer(client: TestClient, org: dict[str, str], event_id: int, name: str) -> int:
    guests = client.get(f"/api/events/{event_id}/guests", headers=org).json()["guests"]
    return int({g["username"]: g for g in guests}[name]["selfie_changes"])


def _user_id(client: TestClient, headers: dict[str, str]) -> int:
    return int(client.get("/api/me", headers=headers).json()["id"])


# --- finding 3: deleting before each upload no longer resets the limit -------------------------


def test_deleting_the_selfie_before_each_upload_still_uses_up_the_daily_changes(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    sneaky = bearer(register(client, event["code"], "sneaky"))
    for _ in range(get_settings().selfie_changes_per_day):  # 3: a face searched, then deleted
        assert selfie_verdict(client, sneaky, FACE)["status"] == "ready"
        assert client.delete("/api/selfie", headers=sneaky).status_code == 204
    r = _upload(client, sneaky)
    assert (r.status_code, r.json()["error"]["code"]) == (429, "selfie_changes_exhausted")
    assert int(r.headers["Retry-After"]) > 23 * 3600
    assert _changes_seen_by_organizer(client, org_headers, event["id"], "sneaky") == 3
    # Another guest's selfie is not held up by it.
    assert selfie_verdict(client, bearer(register(client, event["code"], "other")), FACE)["status"] == "ready"


# --- finding 8: refused selfies do not count; the true Retry-After ------------------------------


def test_refused_selfies_do_not_use_up_the_daily_changes(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    guest = bearer(register(client, event["code"], "darkroom"))
    assert selfie_verdict(client, guest, FACE)["status"] == "ready"
    for _ in range(4):  # more refusals than the day's changes
        state = selfie_verdict(client, guest, _no_face())
        assert (state["status"], state["error"]["code"]) == ("rejected", "no_face")
    assert selfie_verdict(client, guest, fixture_bytes("obama2.jpg"))["status"] == "ready"
    assert _changes_seen_by_organizer(client, org_headers, event["id"], "darkroom") == 1


def test_retry_after_is_when_the_oldest_counted_change_leaves_the_day(
    client: TestClient, guest_headers: dict[str, str]
) -> None:
    assert selfie_verdict(client, guest_headers, FACE)["status"] == "ready"
    user_id = _user_id(client, guest_headers)
    now = utcnow()
    with session_scope() as session:
        for hours in (20, 10, 1):
            session.add(SelfieChange(user_id=user_id, created_at=now - timedelta(hours=hours)))
    r = _upload(client, guest_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (429, "selfie_changes_exhausted")
    # The change of 20 hours ago leaves the window in 4 hours.
    assert abs(int(r.headers["Retry-After"]) - 4 * 3600) < 120, r.headers["Retry-After"]
    assert "3 times a day" in r.json()["error"]["message"]


# --- finding 17: atomic under concurrency --------------------------------------------------------


async def _concurrently(n: int, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> list[int]:
    from main import app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as ac:
        responses = await asyncio.gather(
            *(ac.request(method, path, headers=headers, **kwargs) for _ in range(n))
        )
    return [r.status_code for r in responses]


def test_thirty_concurrent_uploads_of_one_guest_make_one_change(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_uploads_per_guest", 100)
    monkeypatch.setattr(get_settings(), "throttle_selfies_per_guest", "100/hour")
    guest = bearer(register(client, event["code"], "racer"))
    assert selfie_verdict(client, guest, FACE)["status"] == "ready"
    files = {"file": ("s.jpg", fixture_bytes("obama2.jpg"))}
    statuses = asyncio.run(_concurrently(30, "POST", "/api/upload-selfie", guest, files=files))
    assert statuses == [202] * 30
    drain_jobs()
    # Each upload cancelled the one still waiting: one new selfie was checked, one change.
    assert _changes_seen_by_organizer(client, org_headers, event["id"], "racer") == 1
    with session_scope() as session:
        user_id = _user_id(client, guest)
        assert session.scalar(select(func.count()).select_from(Selfie).where(Selfie.user_id == user_id)) == 1


def test_twenty_concurrent_deletions_make_one_change(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any]
) -> None:
    guest = bearer(register(client, event["code"], "eraser"))
    assert selfie_verdict(client, guest, FACE)["status"] == "ready"
    statuses = asyncio.run(_concurrently(20, "DELETE", "/api/selfie", guest))
    assert sorted(statuses) == [204] + [404] * 19
    assert _changes_seen_by_organizer(client, org_headers, event["id"], "eraser") == 1


def test_selfies_accepted_by_concurrent_workers_never_pass_the_daily_changes(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_changes_per_day", 2)
    guest = bearer(register(client, event["code"], "flood"))
    assert selfie_verdict(client, guest, FACE)["status"] == "ready"
    user_id = _user_id(client, guest)
    with session_scope() as session:  # five selfies queued at once (past the upload's checks)
        for i in range(5):
            key = f"selfies/{user_id}/queued{i}.jpg"
            storage.save(key, fixture_bytes("obama2.jpg"))
            session.add(Selfie(user_id=user_id, image_key=key, strict=True, status=SelfieStatus.pending))
    workers = [ThreadWorker(f"racer-{i}") for i in range(3)]
    for w in workers:
        w.__enter__()
    try:
        deadline = time.monotonic() + 120
        while _in_progress(user_id):
            assert time.monotonic() < deadline, "the selfies got no verdict"
            time.sleep(0.1)
    finally:
        for w in workers:
            w.__exit__()
    assert 1 <= _changes_seen_by_organizer(client, org_headers, event["id"], "flood") <= 2
    with session_scope() as session:
        statuses = list(session.scalars(select(Selfie.status).where(Selfie.user_id == user_id)))
        codes = set(session.scalars(select(Selfie.error_code).where(Selfie.status == SelfieStatus.rejected)))
    assert statuses.count(SelfieStatus.ready) == 1
    assert codes <= {"selfie_changes_exhausted"}


def _in_progress(user_id: int) -> bool:
    with session_scope() as session:
        todo = (SelfieStatus.pending, SelfieStatus.matching)
        stmt = (
            select(func.count()).select_from(Selfie).where(Selfie.user_id == user_id, Selfie.status.in_(todo))
        )
        return bool(session.scalar(stmt))


# --- finding 16: live streams per guest ----------------------------------------------------------


def test_a_guest_keeps_a_bounded_number_of_live_streams(
    client: TestClient, guest_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "selfie_events_max_seconds", 2.0)
    allowed = 5  # SELFIE_EVENTS_PER_GUEST's default

    async def run() -> tuple[list[int], httpx.Response, int]:
        from main import app

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as ac:
            streams = [
                asyncio.ensure_future(ac.get("/api/selfie/events", headers=guest_headers))
                for _ in range(allowed)
            ]
            await asyncio.sleep(0.5)  # all of them open
            refused = await ac.get("/api/selfie/events", headers=guest_headers)
            ended = [r.status_code for r in await asyncio.gather(*streams)]
            again = await ac.get("/api/selfie/events", headers=guest_headers)  # places given back
        return ended, refused, again.status_code

    ended, refused, again = asyncio.run(run())
    assert ended == [200] * allowed and again == 200
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_requests")
    assert int(refused.headers["Retry-After"]) > 0


# --- finding 22: served photos are cached minutes, then revalidated ------------------------------


def test_a_photo_is_cached_minutes_and_no_longer_served_once_the_guest_said_not_me(party: Party) -> None:
    c, photo = party.client, party.photos["a.jpg"]
    r = c.get(f"/api/photos/{photo}/thumbnail", headers=party.a)
    assert r.status_code == 200
    cache_control = r.headers["Cache-Control"]
    assert cache_control.startswith("private, max-age=")
    assert int(cache_control.removeprefix("private, max-age=")) <= 600  # minutes, not a day
    etag = r.headers["ETag"]
    again = c.get(f"/api/photos/{photo}/thumbnail", headers={**party.a, "If-None-Match": etag})
    assert again.status_code == 304 and not again.content  # still allowed: no bytes sent again
    assert c.post(f"/api/my-photos/{photo}/not-me", headers=party.a).status_code == 204
    gone = c.get(f"/api/photos/{photo}/thumbnail", headers={**party.a, "If-None-Match": etag})
    assert gone.status_code == 404


# --- finding 24: an erased account leaves no selfie folder ---------------------------------------


def test_an_erased_account_leaves_no_selfie_folder(
    storage_kind: str, client: TestClient, guest_headers: dict[str, str]
) -> None:
    user_id = _user_id(client, guest_headers)
    assert _upload(client, guest_headers).status_code == 202
    prefix = f"selfies/{user_id}/"
    everything = storage.backend().keys_older_than(utcnow() + timedelta(days=1))
    assert any(k.startswith(prefix) for k in everything)
    r = client.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=guest_headers)
    assert r.status_code == 204, r.text
    everything = storage.backend().keys_older_than(utcnow() + timedelta(days=1))
    assert not any(k.startswith(prefix) for k in everything)
    if storage_kind == "local":
        assert not (get_settings().media_dir / "selfies" / str(user_id)).exists()
