"""Erasing an account is complete whatever the process imported: the steps are explicit
calls of ``app.actions.erasure``, not hooks that other modules add when they are imported.

Checked in a fresh interpreter that imports nothing but the erasure action (no web app, no
API, no worker): the guest's selfie row, its file, their membership and selfie changes go.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, sys

from app.actions import erasure
from app.accounts import service as accounts_service
from app.accounts.models import Role
from app.core import storage
from app.core.database import get_engine, session_scope
from app.events import service as events_service
from app.events.schemas import EventCreate
from app.selfies.models import Selfie, SelfieChange, SelfieStatus
from sqlalchemy import inspect, text

with session_scope() as session:
    organizer = accounts_service.create_user(
        session=session, username="organizer", email="organizer@example.org",
        password="plum tractor violet 93", role=Role.organizer,
    )
    event = events_service.create_event(session=session, organizer=organizer, data=EventCreate(name="Party"))
    guest = accounts_service.prepare_user(
        username="guest", email="guest@example.org", password="copper lantern meadow 57", consent=True
    )
    events_service.register_guest(session=session, user=guest, event_code=event.code, address="127.0.0.1")
    key = storage.new_key(f"selfies/{guest.id}", "jpg")
    storage.save(key, b"the selfie's bytes")
    session.add(Selfie(user_id=guest.id, image_key=key, status=SelfieStatus.ready, descriptor=b"\0" * 512))
    session.add(SelfieChange(user_id=guest.id))
    guest_id = guest.id

with session_scope() as session:
    user = accounts_service.get_user(session=session, user_id=guest_id)
    erasure.erase_user(session=session, user=user, password="copper lantern meadow 57")

ROOTS = ("app.main", "app.api", "app.web", "app.worker")
left = {}
with get_engine().connect() as conn:
    for table in inspect(conn).get_table_names():
        columns = {c["name"] for c in inspect(conn).get_columns(table)}
        column = "id" if table == "users" else "user_id" if "user_id" in columns else None
        if column:
            query = text(f"SELECT count(*) FROM {table} WHERE {column} = :v")
            n = conn.execute(query, {"v": guest_id}).scalar()
            if n:
                left[table] = n
print(json.dumps({
    "left": left,
    "file_left": storage.size(key) is not None,
    "composition_roots": sorted(m for m in ROOTS if m in sys.modules),
}))
"""


def test_erasing_an_account_erases_the_selfie_and_its_file_whatever_was_imported(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "STORAGE_URL": "",
    }
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["composition_roots"] == []  # nothing but the action and what it imports
    assert result["left"] == {}
    assert result["file_left"] is False
