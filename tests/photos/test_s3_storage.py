"""The service on a real S3-compatible bucket (SeaweedFS): uploads land in the bucket and
nowhere on local disk, photos are served by presigned URLs (or streamed by the node), the
zips read from the bucket, and erasures reach it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.core.config import get_settings
from tests.conftest import Bucket
from tests.fixtures.events import Party
from tests.helpers import drain_jobs
from tests.privacy.erasure import rows_naming
from tools.accounts import PASSWORD
from tools.harness.seaweedfs import S3Server
from tools.harness.server import free_port


@pytest.fixture
def before_party(s3_storage: Bucket) -> None:
    """The party's photos and selfies go to the bucket."""


def _local_files() -> list[str]:
    root = get_settings().data_dir
    return [str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".png", ".jpeg")]


def test_photos_and_selfies_live_in_the_bucket_and_are_served_from_it(
    party: Party, s3_storage: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, photo = party.client, party.photos["ab.jpg"]
    keys = s3_storage.stored_keys()
    assert {k.split("/")[0] for k in keys} == {"photos", "thumbs", "served"}  # selfie images are gone
    assert _local_files() == []

    r = c.get(f"/api/photos/{photo}/original", headers=party.a, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].startswith(s3_storage.server.endpoint_url)
    fetched = httpx.get(r.headers["location"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(fetched.content)) as img:
        assert not img.getexif().get_ifd(0x8825)
    # Another guest's photo is refused before any URL is made.
    assert c.get(f"/api/photos/{party.photos['a.jpg']}/original", headers=party.b).status_code == 404

    # The pages allow images from the bucket, and only from it.
    page = c.get("/my-photos", headers=party.a)
    assert (
        f"img-src 'self' data: blob: {s3_storage.server.endpoint_url}"
        in page.headers["content-security-policy"]
    )

    monkeypatch.setattr(get_settings(), "storage_presigned_urls", False)
    streamed = c.get(f"/api/photos/{photo}/original", headers=party.a, follow_redirects=False)
    assert streamed.status_code == 200 and streamed.content == fetched.content
    assert int(streamed.headers["content-length"]) == len(fetched.content)
    assert (
        "img-src 'self' data: blob:;"
        in c.get("/my-photos", headers=party.a).headers["content-security-policy"]
    )

    export = c.get("/api/me/export", headers=party.a)
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert int(export.headers["content-length"]) == len(export.content)
    assert len([n for n in names if n != "me.json"]) == 2


def test_erasures_reach_the_bucket(party: Party, s3_storage: Bucket) -> None:
    c, event_id = party.client, party.event["id"]
    shared = party.photos["ab.jpg"]
    assert c.delete(f"/api/events/{event_id}/photos/{shared}", headers=party.org).status_code == 204
    assert not [k for k in s3_storage.stored_keys() if f"/{shared}." in k]
    assert len([k for k in s3_storage.stored_keys() if k.startswith("photos/")]) == 1

    assert c.request("DELETE", "/api/me", json={"password": PASSWORD}, headers=party.a).status_code == 204
    assert c.delete(f"/api/events/{event_id}", headers=party.org).status_code == 204
    drain_jobs()
    assert rows_naming(("event", event_id)) == {}
    assert s3_storage.stored_keys() == set()


def test_a_node_refuses_to_start_when_its_bucket_cannot_be_reached(
    s3_server: S3Server, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATA_DIR": str(tmp_path),
        "EMBEDDED_FACE_WORKERS": "false",
        "STORAGE_URL": "s3://no-such-bucket/media",
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    done = subprocess.run(
        [gunicorn, "main:app", "-c", "gunicorn_config.py"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "storage: S3 bucket 'no-such-bucket'" in done.stderr and "cannot be reached" in done.stderr
