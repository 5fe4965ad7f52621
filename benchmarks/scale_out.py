"""The scale-out figures: time to index 20 photos with one node's face worker against three
nodes' (one each), and the latency of a photo upload on S3 storage (SeaweedFS) against local
files. Nodes as in the drill (``tools.harness.cluster``): 127.0.0.2-4, PgBouncer, Redis.

Runs on a scratch PostgreSQL database (``bench_scale``, dropped and created for each run) of
the server in BENCH_POSTGRES_URL (default ``postgresql://postgres@127.0.0.1:5432/postgres``).

    .venv/bin/python -m benchmarks.scale_out [--uploads 40]
"""

from __future__ import annotations

import argparse
import os
import time

import httpx
from sqlalchemy import create_engine, text

from app.core.config import sqlalchemy_url
from benchmarks.figures import percentile
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.cluster import running_cluster
from tools.harness.server import running_server
from tools.paths import DEVSET
from tools.photos import twenty_photos

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "bench_scale"


def fresh_database() -> str:
    engine = create_engine(sqlalchemy_url(SERVER), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    engine.dispose()
    return SERVER.rsplit("/", 1)[0] + f"/{DATABASE}"


def organizer_event(base: str, env: dict[str, str]) -> tuple[dict[str, str], int]:
    create_organizer_cli(env, "bench_boss")
    r = httpx.post(f"{base}/api/login", json={"login": "bench_boss", "password": PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    event = httpx.post(f"{base}/api/events", json={"name": "Bench"}, headers=headers, timeout=30).json()
    return headers, int(event["id"])


def index_time(face_nodes: int) -> float:
    """Seconds from the upload of the 20 photos (through node A) to the last one indexed."""
    names = ["node-a", "node-b", "node-c"]
    nodes = {
        n: {"FACE_WORKERS": "1"} if i < face_nodes else {"EMBEDDED_FACE_WORKERS": "false"}
        for i, n in enumerate(names)
    }
    with running_cluster(fresh_database(), nodes) as cluster:
        a = cluster.nodes["node-a"]
        headers, event_id = organizer_event(a.base, a.env)
        time.sleep(3)  # the face workers load their models
        files = [("files", (name, data)) for name, data in twenty_photos().items()]
        start = time.perf_counter()
        httpx.post(f"{a.base}/api/events/{event_id}/photos", files=files, headers=headers, timeout=120)
        while True:
            detail = httpx.get(f"{a.base}/api/events/{event_id}", headers=headers, timeout=30).json()
            if detail["photos"]["indexed"] + detail["photos"]["failed"] == 20:
                return time.perf_counter() - start
            time.sleep(0.1)


def upload_latencies(base: str, env: dict[str, str], uploads: int) -> list[float]:
    headers, event_id = organizer_event(base, env)
    photo = (DEVSET / "obama_1080p.jpg").read_bytes()
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for i in range(uploads):
            start = time.perf_counter()
            r = client.post(f"/api/events/{event_id}/photos", files=[("files", (f"p{i}.jpg", photo))])
            times.append(time.perf_counter() - start)
            r.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=40)
    args = parser.parse_args()

    one, three = index_time(1), index_time(3)
    print(f"index 20 photos: 1 node's face worker {one:.1f} s, 3 nodes' face workers {three:.1f} s")

    quiet = {"EMBEDDED_FACE_WORKERS": "false"}  # uploads only: no indexing competes for the CPU
    with running_cluster(fresh_database(), {"node-a": quiet}) as cluster:
        a = cluster.nodes["node-a"]
        s3 = upload_latencies(a.base, a.env, args.uploads)
    with running_server(workers=2, env={"DATABASE_URL": fresh_database(), **quiet}) as (base, env):
        local = upload_latencies(base, env, args.uploads)
    size = (DEVSET / "obama_1080p.jpg").stat().st_size // 1024
    for name, times in (("S3 (SeaweedFS)", s3), ("local files", local)):
        print(
            f"upload of one {size} KiB photo, {name}: p50 {percentile(times, 50) * 1000:.0f} ms, "
            f"p95 {percentile(times, 95) * 1000:.0f} ms ({len(times)} uploads)"
        )


if __name__ == "__main__":
    main()
