"""Small leaks closed: the public health check, forged log lines, response headers, file
modes, the files of photos that failed for good."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import database, storage
from app.core.config import Settings, get_settings
from app.photos.models import Photo, PhotoStatus
from tests.helpers import drain_jobs, local_file, ops_headers, register, upload_photos
from tools.accounts import PASSWORD
from tools.photos import fixture_bytes


def test_the_public_health_check_names_no_database_host_or_driver(
    client: TestClient, monkeypatch: Any
) -> None:
    down = Settings(database_url="postgresql://postgres@127.0.0.1:9/nothing", db_connect_timeout=1)
    engine = database.build_engine(down)
    monkeypatch.setattr(database, "_engine", engine, raising=False)
    monkeypatch.setattr(database, "get_engine", lambda: engine)
    import app.ops.service as ops_service

    monkeypatch.setattr(ops_service, "get_engine", lambda: engine)
    public = client.get("/api/health-check")
    private = client.get("/api/health-check", headers=ops_headers())
    engine.dispose()
    assert public.status_code == private.status_code == 503
    text = public.text.lower()
    assert "127.0.0.1" not in text and "port" not in text and "psycopg" not in text and "detail" not in text
    assert public.json()["database"]["reason"] == "database unreachable"
    assert private.json()["database"]["detail"]  # the driver's own words, for operators


def test_a_newline_in_a_path_cannot_forge_a_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.get('/api/nothing%0a2026-11-29T00:00:00 10.0.0.1 "GET /admin" 200')
    (line,) = [
        r.getMessage() for r in caplog.records if r.name == "app.access" and "nothing" in r.getMessage()
    ]
    assert "\n" not in line and "\\n2026-11-29" in line


def test_responses_are_not_sniffed_and_token_answers_are_not_stored(
    client: TestClient, event: dict[str, Any]
) -> None:
    registered = register(client, event["code"], "hanna")
    login = client.post("/api/login", json={"login": "hanna", "password": PASSWORD})
    for r in (registered, login, client.get("/api/health-check"), client.get("/api/nope")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
    assert "server" not in {k.lower() for k in login.headers}


def test_stored_files_and_folders_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "data_dir", tmp_path)
    old = os.umask(0o022)  # even under a permissive umask
    try:
        storage.save("selfies/7/abc.jpg", b"face")
        path = local_file("selfies/7/abc.jpg")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_the_files_of_a_photo_that_failed_for_good_are_deleted(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], session: Session
) -> None:
    whole = fixture_bytes("obama2.jpg")
    ids = upload_photos(client, org_headers, event["id"], {"cut.jpg": whole[: len(whole) // 2]})
    photo = session.get(Photo, ids["cut.jpg"])
    assert photo is not None and local_file(photo.original_key).exists()
    drain_jobs()
    session.expire_all()
    photo = session.scalars(select(Photo).where(Photo.id == ids["cut.jpg"])).one()
    assert photo.status == PhotoStatus.failed and photo.error_code == "unsupported_format"
    assert not local_file(photo.original_key).exists()
