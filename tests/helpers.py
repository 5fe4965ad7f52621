"""Small builders shared by tests: they go through the real services and API."""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.accounts.models import Role
from app.accounts.service import create_user
from app.core.config import get_settings
from tools.accounts import PASSWORD

_seq = itertools.count(1)
CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


def page_text(response: Any) -> str:
    """A page's HTML with its entities decoded (what a reader sees, tags aside)."""
    return html.unescape(response.text)


def csrf(web: TestClient, path: str = "/login") -> str:
    """The CSRF token a page's forms carry."""
    match = CSRF.search(web.get(path).text)
    assert match
    return match.group(1)


def make_organizer(session: Session, username: str | None = None) -> dict[str, Any]:
    username = username or f"org{next(_seq)}"
    user = create_user(
        session=session,
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        role=Role.organizer,
    )
    session.commit()
    return {"id": user.id, "username": username}


def login(client: TestClient, login: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/login", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def make_event(client: TestClient, headers: dict[str, str], name: str = "Summer Party") -> dict[str, Any]:
    r = client.post("/api/events", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text
    event: dict[str, Any] = r.json()
    return event


def register(client: TestClient, code: str, username: str, **extra: Any) -> Any:
    body = {
        "event_code": code,
        "username": username,
        "email": extra.pop("email", f"{username}@example.com"),
        "password": extra.pop("password", PASSWORD),
        "accept_face_processing": extra.pop("accept_face_processing", True),
        **extra,
    }
    return client.post("/api/register-with-event-code", json=body)


def drain_jobs(worker_id: str = "test-worker") -> int:
    """Run the real face jobs in this process until none is left; how many ran."""
    from app.jobs.runner import work_once
    from app.worker import load_job_kinds

    load_job_kinds()
    n = 0
    while work_once(worker_id=worker_id):
        n += 1
    return n


def upload_photos(
    client: TestClient, headers: dict[str, str], event_id: int, photos: dict[str, bytes]
) -> dict[str, int]:
    files = [("files", (name, data)) for name, data in photos.items()]
    r = client.post(f"/api/events/{event_id}/photos", files=files, headers=headers)
    assert r.status_code == 202, r.text
    return {p["filename"]: p["id"] for p in r.json()["accepted"]}


def bearer(token_response: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_response.json()['access_token']}"}


class ThreadWorker:
    """The real face-worker loop in a thread of the test process, while a request waits."""

    def __init__(self, worker_id: str = "thread-worker") -> None:
        from app.jobs.runner import work_once
        from app.worker import load_job_kinds

        load_job_kinds()
        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.is_set():
                if not work_once(worker_id=worker_id):
                    time.sleep(0.02)

        self._thread = threading.Thread(target=loop, daemon=True)

    def __enter__(self) -> ThreadWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def selfie_verdict(client: TestClient, headers: dict[str, str], data: bytes, name: str = "selfie.jpg") -> Any:
    """Upload a selfie while a real face worker runs in a thread; the state the guest then
    sees once it is no longer checking or matching (followed with the long-poll)."""
    with ThreadWorker():
        r = client.post("/api/upload-selfie", files={"file": (name, data)}, headers=headers)
        assert (r.status_code, r.json()["status"]) == (202, "checking"), r.text
        deadline = time.monotonic() + 30
        state = r.json()
        while state["status"] in ("checking", "matching"):
            assert time.monotonic() < deadline, "the selfie got no verdict"
            state = client.get("/api/selfie", params={"wait": 10}, headers=headers).json()
        assert state["selfie_id"] == r.json()["selfie_id"]
    return state


def ops_headers(data_dir: str | Path | None = None) -> dict[str, str]:
    """The operations token header: this process's, or that of a server run on ``data_dir``."""
    if data_dir is None:
        return {"X-Ops-Token": get_settings().ops_key()}
    return {"X-Ops-Token": (Path(data_dir) / "ops_token").read_text().strip()}


def local_file(key: str) -> Path:
    """The file of a storage key on local storage (the tests' default)."""
    from app.core import storage

    path = storage.local_path(key)
    assert path is not None, "storage is not local files"
    return path
