"""Nothing is left behind: a selfie whose check never finished loses its image, and files
that no row names any more (a crash between a commit and its deletions, rows deleted by hand)
are swept by the daily purge."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core import storage
from app.core.config import get_settings
from app.selfies.models import Selfie
from tests.helpers import drain_jobs, local_file
from tools.photos import fixture_bytes


def test_a_selfie_whose_check_gave_up_loses_its_image(
    client: TestClient, guest_headers: dict[str, str], session: Session
) -> None:
    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
    )
    selfie = session.get(Selfie, r.json()["selfie_id"])
    assert selfie is not None and local_file(selfie.image_key).exists()
    # Its workers kept dying: it has used up its attempts.
    session.execute(update(Selfie).values(attempts=get_settings().job_max_attempts + 1))
    session.commit()
    drain_jobs()
    state = client.get("/api/selfie", headers=guest_headers).json()
    assert state["status"] == "rejected" or state["error"]
    assert not local_file(selfie.image_key).exists()


def test_the_purge_sweeps_files_no_row_names(client: TestClient, guest_headers: dict[str, Any]) -> None:
    from app.__main__ import main

    r = client.post(
        "/api/upload-selfie", files={"file": ("s.jpg", fixture_bytes("obama.jpg"))}, headers=guest_headers
    )
    assert r.status_code == 202
    storage.save("selfies/999/left-behind.jpg", b"a face")
    storage.save("selfies/999/being-uploaded.jpg", b"a face")
    stale = local_file("selfies/999/left-behind.jpg")
    fresh = local_file("selfies/999/being-uploaded.jpg")
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    named_before = {p for p in get_settings().media_dir.rglob("*") if p.is_file()} - {stale, fresh}
    assert main(["purge"]) == 0
    assert not stale.exists() and fresh.exists()
    assert all(p.exists() for p in named_before)
