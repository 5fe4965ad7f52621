"""Azure Face as the face provider, its reliability: with the service down every job is kept
and finished when it is back; each call is bounded by a timeout, retried with backoff on 5xx,
waits for a short ``Retry-After`` on 429 and postpones the job on a long one, is not retried
on client errors, and fails fast while the circuit breaker is open.

Faults (5xx, 429, slow answers, the service down) are injected per test into a fresh fake
Face API (``tests.fakes.azure_face``; fixtures in ``tests/faces/conftest.py``); providers
built by hand (``direct``) have their own circuit breaker and tiny backoffs.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from app.core.database import session_scope
from app.faces.providers.azure import AzureProvider
from app.faces.providers.base import ProviderUnavailable
from app.photos.models import Photo, PhotoStatus
from app.selfies.models import Selfie
from tests.faces.azure_support import direct, jpeg
from tests.fakes.azure_face import FakeAzureFace
from tests.fixtures.events import IndexedEvent
from tests.helpers import drain_jobs
from tools.photos import fixture_bytes


def test_provider_down_keeps_every_job_and_finishes_them_when_it_is_back(
    client: TestClient, azure: AzureProvider, fake: FakeAzureFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure.breaker.reset_timeout = 1.5  # postponed jobs come back after at most that
    party = IndexedEvent(client, "Azure Gala")
    fake.stop()
    ids = party.upload({"a2.jpg": fixture_bytes("obama2.jpg"), "b.jpg": fixture_bytes("biden.jpg")})
    drain_jobs()
    with session_scope() as session:
        photos = session.scalars(select(Photo).where(Photo.id.in_(ids.values()))).all()
        assert {(p.status, p.error_code, p.attempts) for p in photos} == {
            (PhotoStatus.pending, "provider_unavailable", 0)
        }
    # Consecutive failures opened the circuit: calls now fail fast, without a request.
    assert azure.breaker.current_state == "open"
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        azure.analyze_selfie(fixture_bytes("obama.jpg"), strict=True)

    guest = party.guest()
    r = client.post(
        "/api/upload-selfie", files={"file": ("me.jpg", fixture_bytes("obama.jpg"))}, headers=guest
    )
    assert r.status_code == 202 and r.json()["status"] == "checking"
    drain_jobs()
    state = client.get("/api/selfie", headers=guest).json()
    assert state["status"] == "checking"
    assert state["error"]["code"] == "provider_unavailable"
    with session_scope() as session:
        selfie = session.get(Selfie, state["selfie_id"])
        assert selfie is not None and selfie.attempts == 0 and selfie.available_at is not None

    fake.start()
    deadline = time.monotonic() + 20
    while client.get("/api/selfie", headers=guest).json()["status"] != "ready":
        assert time.monotonic() < deadline, "the postponed jobs did not complete"
        drain_jobs()
        time.sleep(0.1)
    drain_jobs()
    assert azure.breaker.current_state == "closed"
    event = client.get(f"/api/events/{party.event['id']}", headers=party.org).json()
    assert event["photos"]["indexed"] == 2 and event["photos"]["failed"] == 0
    assert party.my_photos(guest) == {"a2.jpg"}
    with session_scope() as session:
        assert session.get(Selfie, state["selfie_id"]).error_code is None  # type: ignore[union-attr]


# --- reliability of each call -------------------------------------------------------------------


def test_throttled_calls_wait_for_retry_after_then_succeed(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    fake.throttle_next(1, retry_after=0.6, endpoint="detect")
    started = time.monotonic()
    analysis = provider.analyze_selfie(fixture_bytes("obama.jpg"), strict=True)
    assert time.monotonic() - started >= 0.6
    assert analysis.faces_found == 1 and fake.calls["detect"] == 2
    assert provider.breaker.current_state == "closed" and provider.breaker.fail_counter == 0


def test_a_long_retry_after_postpones_the_job_instead_of_sleeping(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    fake.throttle_next(1, retry_after=120, endpoint="detect")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        provider.analyze_selfie(fixture_bytes("obama.jpg"), strict=True)
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 120 and fake.calls["detect"] == 1


def test_calls_slower_than_the_timeout_are_abandoned_and_retried(fake: FakeAzureFace) -> None:
    selfie = fixture_bytes("obama.jpg")
    direct(fake).analyze_selfie(selfie, strict=True)  # the fake now answers this image at once
    provider = direct(fake, timeout=0.5, max_retries=2)
    fake.delay_next(1, seconds=3, endpoint="detect")
    started = time.monotonic()
    assert provider.analyze_selfie(selfie, strict=True).faces_found == 1
    assert 0.5 <= time.monotonic() - started < 2.5
    assert fake.calls["detect"] == 3  # warm-up, the abandoned call, the retry

    fake.delay_next(3, seconds=3, endpoint="detect")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="Timeout"):
        provider.analyze_selfie(selfie, strict=True)
    assert time.monotonic() - started < 2.9  # 3 tries of 0.5 s: bounded
    assert fake.calls["detect"] == 6


def test_server_error_bursts_are_retried_with_backoff_then_succeed(
    fake: FakeAzureFace, caplog: pytest.LogCaptureFixture
) -> None:
    provider = direct(fake, max_retries=3)
    fake.fail_next(2, status=503, endpoint="detect")
    fake.fail_next(1, status=500, endpoint="detect")
    with caplog.at_level("WARNING", logger="app.faces.providers.azure"):
        assert provider.analyze_selfie(fixture_bytes("obama.jpg"), strict=True).faces_found == 1
    assert fake.calls["detect"] == 4
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and "HTTP 503" in retries[0] and "retry 3/3" in retries[2]


def test_errors_beyond_max_retries_make_the_provider_unavailable(fake: FakeAzureFace) -> None:
    provider = direct(fake, max_retries=2, circuit_failures=10, circuit_reset_seconds=7)
    fake.fail_next(3, status=502)
    with pytest.raises(ProviderUnavailable) as caught:
        provider.analyze_selfie(fixture_bytes("obama.jpg"), strict=True)
    assert fake.calls["detect"] == 3 and caught.value.retry_after == 7
    assert provider.breaker.current_state == "closed"  # 3 failures < 10: not open yet
    assert provider.analyze_selfie(fixture_bytes("obama.jpg"), strict=True).faces_found == 1


def test_client_errors_are_not_retried_and_unreadable_images_are_unsupported(fake: FakeAzureFace) -> None:
    provider = direct(fake)
    tiny = jpeg(Image.new("RGB", (40, 40), "grey"))  # a valid JPEG under Azure's 1 KB minimum
    with pytest.raises(Exception) as caught:
        provider.analyze_selfie(tiny, strict=True)
    assert getattr(caught.value, "code", None) == "unsupported_format"
    assert getattr(caught.value, "status_code", None) == 415
    assert fake.calls["detect"] == 1 and provider.breaker.fail_counter == 0

    wrong_key = AzureProvider(endpoint=fake.endpoint, key="not-the-key", max_retries=3)
    with pytest.raises(ProviderUnavailable, match="credentials"):
        wrong_key.analyze_selfie(fixture_bytes("obama.jpg"), strict=True)
    assert fake.calls["detect"] == 2


def test_the_circuit_opens_after_consecutive_failures_fails_fast_then_closes(fake: FakeAzureFace) -> None:
    provider = direct(fake, max_retries=0, circuit_failures=3, circuit_reset_seconds=0.4)
    selfie = fixture_bytes("obama.jpg")
    fake.fail_next(4, status=503, endpoint="detect")
    for _ in range(3):
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            provider.analyze_selfie(selfie, strict=True)
    assert provider.breaker.current_state == "open" and fake.calls["detect"] == 3
    with pytest.raises(ProviderUnavailable, match="circuit open") as caught:
        provider.analyze_selfie(selfie, strict=True)
    assert fake.calls["detect"] == 3  # failed fast: no request
    assert 0 < caught.value.retry_after <= 1.0

    time.sleep(0.45)  # half-open: one trial call, which fails and opens the circuit again
    with pytest.raises(ProviderUnavailable, match="did not answer"):
        provider.analyze_selfie(selfie, strict=True)
    assert provider.breaker.current_state == "open" and fake.calls["detect"] == 4
    time.sleep(0.45)  # the next trial succeeds and closes it
    assert provider.analyze_selfie(selfie, strict=True).faces_found == 1
    assert provider.breaker.current_state == "closed" and fake.calls["detect"] == 5
