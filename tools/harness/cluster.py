"""Several nodes of the service on one machine, as they would run on several: each its own
Gunicorn on its own loopback address (127.0.0.2, .3, ...), its own DATA_DIR and RUN_DIR, and no
shared disk; one PostgreSQL reached through PgBouncer, one SeaweedFS bucket, one Redis.

Used by the scale-out drill (``tests/drills``) and ``benchmarks.scale_out``.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tools.harness.pgbouncer import running_pgbouncer
from tools.harness.seaweedfs import S3Server, running_seaweedfs
from tools.harness.server import free_port, running_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class Node:
    name: str
    base: str
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RUN_DIR"])


@dataclass
class Cluster:
    database_url: str  # direct
    pooled_url: str  # through PgBouncer
    pool_size: int
    s3: S3Server
    bucket: str
    ops_token: str
    redis_prefix: str
    nodes: dict[str, Node] = field(default_factory=dict)

    @property
    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ops_token}"}

    def bucket_keys(self) -> list[str]:
        return self.s3.keys(self.bucket)


@contextmanager
def running_cluster(
    database_url: str,
    nodes: dict[str, dict[str, str]],
    *,
    pool_size: int = 10,
    web_workers: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """Start one node per entry of ``nodes`` (name -> its own extra environment), in order, on
    127.0.0.2, .3, ... and one port; stop them all after."""
    with ExitStack() as stack:
        s3 = stack.enter_context(running_seaweedfs())
        pooled = stack.enter_context(running_pgbouncer(database_url, pool_size=pool_size))
        bucket = f"drill-{uuid.uuid4().hex[:12]}"
        s3.client().create_bucket(Bucket=bucket)
        cluster = Cluster(
            database_url=database_url,
            pooled_url=pooled,
            pool_size=pool_size,
            s3=s3,
            bucket=bucket,
            ops_token=secrets.token_urlsafe(32),
            redis_prefix=f"drill-{uuid.uuid4().hex[:8]}",
        )
        shared = {
            "DATABASE_URL": pooled,
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_LISTEN_URL": database_url,
            "STORAGE_URL": f"s3://{bucket}/media",
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": cluster.redis_prefix,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "OPS_TOKEN": cluster.ops_token,
            **(env or {}),
        }
        port = free_port()
        for i, (name, own) in enumerate(nodes.items()):
            host = f"127.0.0.{2 + i}"
            scratch = stack.enter_context(_scratch(name))
            node_env = {
                **shared,
                "HOST": host,
                "PORT": str(port),
                "NODE_NAME": name,
                "DATA_DIR": str(scratch / "data"),
                "RUN_DIR": str(scratch / "run"),
                **own,
            }
            base, environ = stack.enter_context(running_server(workers=web_workers, env=node_env))
            cluster.nodes[name] = Node(name, base, environ)
        yield cluster


@contextmanager
def _scratch(name: str) -> Iterator[Path]:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=f"node-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
