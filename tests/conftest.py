"""Test set-up: a real database (SQLite file, or TEST_DATABASE_URL), migrated with Alembic.

The environment is fixed before the app is imported. Each test that touches the
database starts from empty tables (``clean_db``), so tests can commit for real, run
concurrent requests and still never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TMP = Path(tempfile.mkdtemp(prefix="event-photos-tests-"))
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
os.environ["ENVIRONMENT"] = "test"
os.environ["DATA_DIR"] = str(_TMP / "data")
os.environ["DATABASE_URL"] = TEST_DATABASE_URL or f"sqlite:///{_TMP / 'test.db'}"
os.environ.pop("SECRET_KEY", None)
# Priorities are for production; the suite must pass on a busy machine, where face workers at
# nice 15 and hashes at nice 10 would crawl behind any other process (their own test below).
os.environ["FACE_WORKER_NICE"] = "0"
os.environ["PASSWORD_HASH_NICE"] = "0"

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.core.config import get_settings  # noqa: E402
from app.core.database import get_engine, get_sessionmaker  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402
from app.models import metadata  # noqa: E402
from tools.harness.seaweedfs import S3Server, running_seaweedfs  # noqa: E402
from tools.harness.smtp import SmtpServer, running_smtp  # noqa: E402

IS_POSTGRES = os.environ["DATABASE_URL"].startswith("postgresql")

pytest_plugins = ["tests.fixtures.people", "tests.fixtures.events"]


def pytest_report_header() -> str:
    return f"database: {os.environ['DATABASE_URL']}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, the tests marked ``once`` are left out: what they prove does not depend
    on the database, and the SQLite pass of ``make test`` has run them (``TEST_ONCE=1`` keeps
    them)."""
    if not IS_POSTGRES or os.environ.get("TEST_ONCE") == "1":
        return
    once = [item for item in items if item.get_closest_marker("once")]
    if once:
        config.hook.pytest_deselected(items=once)
        items[:] = [item for item in items if not item.get_closest_marker("once")]


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> Iterator[None]:
    if IS_POSTGRES:
        with get_engine().begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(get_settings().sqlalchemy_url)
    yield
    get_engine().dispose()


# A server under test (browser tests, drills) keeps polling the tables while a test empties
# them; PostgreSQL may then pick the TRUNCATE as the victim of a deadlock. It is retried.
_RETRIED_PGCODES = {"40P01", "55P03"}  # deadlock_detected, lock_not_available


def truncate_all() -> None:
    tables = [t.name for t in metadata.sorted_tables]
    for attempt in range(1, 11):
        try:
            with get_engine().begin() as conn:
                if IS_POSTGRES:
                    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for name in reversed(tables):
                        conn.execute(text(f"DELETE FROM {name}"))
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) not in _RETRIED_PGCODES or attempt == 10:
                raise
            time.sleep(0.1 * attempt)


@pytest.fixture
def clean_db() -> Iterator[None]:
    from app.core import throttle
    from app.faces.search import galleries

    truncate_all()
    galleries.clear()
    throttle.reset()
    yield
    truncate_all()
    galleries.clear()
    throttle.reset()


MAIL_PUBLIC_URL = "http://photos.test"


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd, its own process, STARTTLS with a certificate the test
    made, AUTH) that the service's settings point at; links in mails start with
    ``MAIL_PUBLIC_URL``."""
    with running_smtp(tmp_path / "smtp") as server:
        settings = get_settings()
        monkeypatch.setattr(settings, "smtp_url", server.url)
        monkeypatch.setattr(settings, "smtp_ca_file", server.ca_file)
        monkeypatch.setattr(settings, "smtp_timeout", 5.0)
        monkeypatch.setattr(settings, "public_url", MAIL_PUBLIC_URL)
        yield server


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", "redis"])
def throttle_storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The throttles' counts in this process's memory, then in the real Redis (keys under a
    prefix of this test run, removed after)."""
    from app.core import throttle

    settings = get_settings()
    if request.param == "redis":
        monkeypatch.setattr(settings, "redis_url", REDIS_URL)
        monkeypatch.setattr(settings, "redis_key_prefix", f"event-photos-test-{os.getpid()}")
    throttle.forget_limiter()
    throttle.reset()
    yield request.param
    throttle.reset()
    throttle.forget_limiter()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server for this test run: SeaweedFS on 127.0.0.1, telemetry off."""
    with running_seaweedfs() as server:
        yield server


@dataclass(frozen=True)
class Bucket:
    server: S3Server
    name: str
    prefix: str

    def stored_keys(self) -> set[str]:
        """Every key under the prefix, relative to it."""
        return {key.removeprefix(f"{self.prefix}/") for key in self.server.keys(self.name)}


@pytest.fixture
def s3_storage(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """Storage in a new bucket of the real S3 server (STORAGE_URL=s3://bucket/media), and an
    empty DATA_DIR: what lands on local disk is seen."""
    from app.core import storage

    bucket = Bucket(s3_server, f"test-{uuid.uuid4().hex[:16]}", "media")
    s3_server.client().create_bucket(Bucket=bucket.name)
    settings = get_settings()
    for name, value in {
        "data_dir": tmp_path / "data",
        "storage_url": f"s3://{bucket.name}/{bucket.prefix}",
        "s3_endpoint_url": s3_server.endpoint_url,
        "aws_access_key_id": s3_server.access_key,
        "aws_secret_access_key": s3_server.secret_key,
        "aws_region": s3_server.region,
    }.items():
        monkeypatch.setattr(settings, name, value)
    storage.forget_backend()
    yield bucket
    storage.forget_backend()


@pytest.fixture(params=["local", "s3"])
def storage_kind(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs on local files (in an empty DATA_DIR), then on the real S3 server (in an
    empty bucket)."""
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    else:
        monkeypatch.setattr(get_settings(), "data_dir", tmp_path)
    return str(request.param)


@pytest.fixture
def session(clean_db: None) -> Iterator[Session]:
    with get_sessionmaker()() as s:
        yield s


@pytest.fixture
def client(clean_db: None) -> Iterator[TestClient]:
    from main import app

    with TestClient(app) as c:
        yield c


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    """The pages over HTTPS (their cookies are ``Secure``), on emptied tables."""
    from main import app

    with TestClient(app, base_url="https://testserver") as c:
        yield c


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many cases the API fuzzing sent, per role and operation (when it ran)."""
    import sys

    fuzz = sys.modules.get("tests.security.test_openapi_fuzz")
    cases = getattr(fuzz, "CASES", None)
    if not cases:
        return
    terminalreporter.section("OpenAPI fuzzing (schemathesis): cases per role and operation")
    for key, n in sorted(cases.items()):
        terminalreporter.write_line(f"{n:5d}  {key}")
    terminalreporter.write_line(f"{sum(cases.values()):5d}  in all")
