"""The scale-out drill: three nodes on 127.0.0.2, .3 and .4 (each its own Gunicorn, DATA_DIR
and RUN_DIR, no shared disk), one PostgreSQL behind PgBouncer, one SeaweedFS bucket, one
Redis. Photos go in through A, B's face worker dies by kill -9 in the middle of a job, C
finishes it, a guest moves between the nodes, and nothing is recorded twice or left on a
node's disk. ``make drill-scale`` runs it; CI runs it in the PostgreSQL pass."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.faces.models import Face, FaceMatch
from app.photos.models import Photo, PhotoStatus
from tests.conftest import IS_POSTGRES, TEST_DATABASE_URL
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.cluster import Cluster, running_cluster
from tools.harness.pgbouncer import server_connections
from tools.photos import fixture_bytes, obama_photos, twenty_photos

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IS_POSTGRES, reason="the drill runs on PostgreSQL (make drill-scale)"),
]

POOL_SIZE = 8


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _kill_face_worker(owner: str) -> None:
    """kill -9 the face worker holding a lease (``node:pid:index``), and its pool first, so
    nothing on that node restarts it."""
    pid = int(owner.split(":")[1])
    pool = _parent(pid)
    assert b"app.worker" in Path(f"/proc/{pool}/cmdline").read_bytes()
    os.kill(pool, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)


def _login(base: str, login: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/login", json={"login": login, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_three_nodes_share_the_work_survive_a_killed_worker_and_keep_nothing_local(
    clean_db: None, session: Session
) -> None:
    nodes = {
        "node-a": {"EMBEDDED_FACE_WORKERS": "false"},  # web only: the photos come in here
        # B's worker holds the first job it takes until it is killed.
        "node-b": {"FACE_WORKERS": "1", "WORKER_CHAOS_PAUSE_SECONDS": "600"},
        "node-c": {"FACE_WORKERS": "1"},
    }
    with running_cluster(
        TEST_DATABASE_URL,
        nodes,
        pool_size=POOL_SIZE,
        env={"JOB_LEASE_SECONDS": "5", "THROTTLE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": "4/5 minutes"},
    ) as cluster:
        a, b, c = (cluster.nodes[n] for n in nodes)
        create_organizer_cli(a.env, "drill_boss")
        org = _login(a.base, "drill_boss")
        event = httpx.post(f"{a.base}/api/events", json={"name": "Drill"}, headers=org, timeout=30).json()

        # 20 photos through A.
        files = [("files", (name, data)) for name, data in twenty_photos().items()]
        r = httpx.post(f"{a.base}/api/events/{event['id']}/photos", files=files, headers=org, timeout=120)
        assert r.status_code == 202 and len(r.json()["accepted"]) == 20, r.text
        ids = {p["filename"]: p["id"] for p in r.json()["accepted"]}

        # B's face worker takes a job and is killed with kill -9 in the middle of it.
        def leased_by_b() -> str | None:
            session.expire_all()
            return session.scalar(select(Photo.lease_owner).where(Photo.lease_owner.like("node-b:%")))

        wait_for(lambda: leased_by_b() is not None, 120, "node B to take a job")
        owner = leased_by_b()
        assert owner is not None
        killed = session.scalar(select(Photo.id).where(Photo.lease_owner == owner))
        _kill_face_worker(owner)

        # C finishes it, and every other photo.
        def indexed() -> int:
            session.expire_all()
            return session.scalar(select(func.count()).where(Photo.status == PhotoStatus.indexed)) or 0

        wait_for(lambda: indexed() == 20, 300, "the 20 photos to be indexed")
        finished = session.get(Photo, killed)
        assert finished is not None and finished.attempts == 2 and finished.lease_owner is None

        # A guest registers on B, uploads a selfie on C, sees the photos through A.
        reg = httpx.post(
            f"{b.base}/api/register-with-event-code",
            json={
                "event_code": event["code"],
                "username": "drill_guest",
                "email": "drill_guest@example.com",
                "password": PASSWORD,
                "accept_face_processing": True,
            },
            timeout=30,
        )
        assert reg.status_code in (200, 201), reg.text
        guest = {"Authorization": f"Bearer {reg.json()['access_token']}"}
        up = httpx.post(
            f"{c.base}/api/upload-selfie",
            files={"file": ("me.jpg", fixture_bytes("obama.jpg"))},
            headers=guest,
            timeout=30,
        )
        assert up.status_code == 202, up.text
        wait_for(
            lambda: httpx.get(f"{a.base}/api/selfie", headers=guest, timeout=30).json()["status"] == "ready",
            120,
            "the selfie to be matched",
        )
        mine = httpx.get(f"{a.base}/api/my-photos", headers=guest, timeout=30).json()["photos"]
        seen = {name for name, i in ids.items() if i in {p["id"] for p in mine}}
        assert seen <= obama_photos() and len(seen) >= 6, seen
        photo = httpx.get(f"{a.base}/api/photos/{mine[0]['id']}/original", headers=guest, timeout=30)
        assert photo.status_code == 307
        assert httpx.get(photo.headers["location"], timeout=30).status_code == 200

        # Throttles are counted in Redis, across nodes: 4 wrong passwords on A and B, the 5th on C is refused.
        wrong = {"login": "drill_guest", "password": "not the password"}
        codes = [
            httpx.post(f"{n.base}/api/login", json=wrong, timeout=30).status_code for n in (a, a, b, b, c)
        ]
        assert codes == [401, 401, 401, 401, 429]

        # Every node's metrics answer.
        for node in (a, b, c):
            assert (
                httpx.get(f"{node.base}/metrics", headers=cluster.ops_headers, timeout=30).status_code == 200
            )

        # Matches and faces recorded exactly once.
        session.expire_all()
        assert _duplicates(session) == (0, 0)
        faces_per_photo = session.execute(
            select(Photo.faces_count, func.count(Face.id)).outerjoin(Face).group_by(Photo.id)
        ).all()
        assert all(stored == count for stored, count in faces_per_photo)

        # No node's local folders hold a photo; the bucket holds them all.
        _assert_nothing_local(cluster)
        assert len([k for k in cluster.bucket_keys() if k.startswith("media/photos/")]) == 20

        # 3 nodes x 2 web workers x (5 + 5) connections, but PostgreSQL saw at most the pool.
        database = TEST_DATABASE_URL.rsplit("/", 1)[1]
        assert server_connections(TEST_DATABASE_URL, database) <= POOL_SIZE


def _duplicates(session: Session) -> tuple[int, int]:
    matches = session.scalar(
        text(
            "SELECT count(*) FROM (SELECT user_id, photo_id FROM face_matches "
            "GROUP BY user_id, photo_id HAVING count(*) > 1) d"
        )
    )
    faces = session.scalar(
        select(func.count()).select_from(
            select(Face.photo_id, Face.left, Face.top)
            .group_by(Face.photo_id, Face.left, Face.top)
            .having(func.count() > 1)
            .subquery()
        )
    )
    assert session.scalar(select(func.count()).select_from(FaceMatch)), "the guest matched nothing"
    return int(matches or 0), int(faces or 0)


def _assert_nothing_local(cluster: Cluster) -> None:
    for node in cluster.nodes.values():
        for folder in (node.data_dir, node.run_dir):
            images = [
                p
                for p in folder.rglob("*")
                if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
            ]
            assert images == [], f"{node.name} keeps photos on its disk: {images[:3]}"
            assert not (folder / "media").exists()
