"""Small builders shared by tests: they go through the real services and API."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from sqlalchemy.orm import Session

from app.accounts.models import Role
from app.accounts.service import create_user
from app.core.config import get_settings

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


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
    return r.json()


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


FIXTURES = Path(__file__).parent / "fixtures" / "faces"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def side_by_side(*names: str, height: int = 600) -> bytes:
    """A composite photo: the fixtures next to each other, scaled to one height (JPEG)."""
    images = []
    for name in names:
        im = ImageOps.exif_transpose(Image.open(FIXTURES / name)).convert("RGB")
        images.append(im.resize((round(im.width * height / im.height), height)))
    canvas = Image.new("RGB", (sum(i.width for i in images) + 40 * len(images), height + 40), "white")
    x = 20
    for im in images:
        canvas.paste(im, (x, 20))
        x += im.width + 40
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


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


def create_organizer_cli(env: dict[str, str], username: str = "boss") -> None:
    """``python -m app create-organizer`` as an operator runs it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "create-organizer",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            "--password",
            PASSWORD,
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


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
