"""The organizer's dashboard on a bucket (real SeaweedFS) in Chromium: twelve real photos go
straight to the bucket (the web node only signs and completes), then a second browser drops
the same files and nothing is stored twice."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect

from tests.web.conftest import Offsite, new_context
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.seaweedfs import S3Server
from tools.harness.server import free_port, running_server
from tools.paths import DEVSET

pytestmark = [pytest.mark.slow, pytest.mark.once]

PHOTOS = sorted(p for p in DEVSET.iterdir() if p.suffix in (".jpg", ".png"))[:12]
OPS_TOKEN = "ops-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def bucket_server(s3_server: S3Server) -> Iterator[tuple[str, dict[str, str], str]]:
    """Gunicorn (two web workers, one face worker) storing in a new bucket whose CORS lets the
    site's origin upload to it."""
    port = free_port()
    bucket = f"journey-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    s3_server.allow_browser_uploads(bucket, [f"http://127.0.0.1:{port}"])
    env = {
        "PORT": str(port),
        "FACE_WORKERS": "1",
        "OPS_TOKEN": OPS_TOKEN,
        "STORAGE_URL": f"s3://{bucket}/media",
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
    }
    with running_server(workers=2, env=env) as (base, environ):
        yield base, environ, bucket


def _log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Nom d'utilisateur ou e-mail").fill("boss")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}/organizer")


def _node_requests(base: str) -> dict[str, float]:
    """Requests the web node served, by method and route (its Prometheus counter)."""
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}).text
    counts: dict[str, float] = {}
    for m in re.finditer(r"^http_requests_total\{(.*)\} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = labels["endpoint"]  # "METHOD /route/{param}"
        counts[key] = counts.get(key, 0) + float(m.group(2))
    return counts


def _photo_rows(base: str, event_id: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        answer = c.get(f"/api/events/{event_id}/photos", params={"limit": 500}, headers=auth)
    photos: list[dict[str, object]] = answer.json()["photos"]
    return photos


def test_photos_go_straight_to_the_bucket_and_a_second_browser_sends_none_again(
    clean_db: None,
    s3_server: S3Server,
    bucket_server: tuple[str, dict[str, str], str],
    browser: Browser,
    offsite: Offsite,
) -> None:
    base, env, bucket = bucket_server
    create_organizer_cli(env)
    node = urlsplit(base).netloc
    sent_to_node: list[int] = []
    sent_to_bucket: list[int] = []

    def watch(request: Request) -> None:
        if request.method in ("POST", "PUT"):
            size = len(request.post_data_buffer or b"")
            (sent_to_node if urlsplit(request.url).netloc == node else sent_to_bucket).append(size)

    context = new_context(browser, offsite, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.on("request", watch)
    page = context.new_page()
    _log_in(page, base)
    page.get_by_label("Nom de l'événement").fill("Marathon")
    page.get_by_role("button", name="Créer l'événement").click()
    event_id = page.url.rsplit("/", 1)[-1]
    assert page.locator("#dropzone").get_attribute("data-sign") == f"/api/events/{event_id}/photos/uploads"
    before = _node_requests(base)

    page.locator("#photo-files").set_input_files([str(p) for p in PHOTOS])
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#batch-status")).to_have_text(f"{len(PHOTOS)} / {len(PHOTOS)}")
    total = sum(p.stat().st_size for p in PHOTOS)
    assert page.locator("#batch-bytes").text_content() == f"{total / 2**20:.1f} / {total / 2**20:.1f} MB"

    # Every byte of the photos went to the bucket (one PUT per photo, the objects hold them
    # all); the node got small JSON bodies only, and its counter shows no form upload.
    assert len(sent_to_bucket) == len(PHOTOS)
    s3 = s3_server.client()
    originals = [k for k in s3_server.keys(bucket) if k.startswith("media/photos/")]
    assert sum(s3.head_object(Bucket=bucket, Key=k)["ContentLength"] for k in originals) == total
    assert max(sent_to_node) < 8 * 1024 and sum(sent_to_node) < total / 20
    after = _node_requests(base)
    form = "POST /api/events/{event_id}/photos"
    assert after.get(form, 0) == before.get(form, 0)
    assert after["POST /api/events/{event_id}/photos/uploads/{photo_id}/complete"] - before.get(
        "POST /api/events/{event_id}/photos/uploads/{photo_id}/complete", 0
    ) == len(PHOTOS)
    assert len(originals) == len(PHOTOS)
    assert len(_photo_rows(base, event_id)) == len(PHOTOS)

    # Another laptop (no memory of this one) drops the same card: all duplicates, none sent.
    context.close()
    sent_to_bucket.clear()
    second = new_context(browser, offsite, locale="fr-FR", viewport={"width": 1280, "height": 900})
    second.on("request", watch)
    page = second.new_page()
    _log_in(page, base)
    page.goto(f"{base}/organizer/events/{event_id}")
    page.locator("#photo-files").set_input_files([str(p) for p in PHOTOS])
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(page.locator("#upload-list li em", has_text="Déjà sur le serveur")).to_have_count(len(PHOTOS))
    assert sent_to_bucket == []
    assert len([k for k in s3_server.keys(bucket) if k.startswith("media/photos/")]) == len(PHOTOS)

    # The photos are indexed from the bucket by the face worker.
    def settled() -> bool:
        rows = _photo_rows(base, event_id)
        return len(rows) == len(PHOTOS) and all(r["status"] in ("indexed", "failed") for r in rows)

    page.wait_for_timeout(100)
    for _ in range(240):
        if settled():
            break
        page.wait_for_timeout(1000)
    rows = _photo_rows(base, event_id)
    assert sum(r["status"] == "indexed" for r in rows) >= len(PHOTOS) - 1
    second.close()
