"""Test set-up: a real database (SQLite file, or TEST_DATABASE_URL), migrated with Alembic.

The environment is fixed before the app is imported. Each test that touches the
database starts from empty tables (``clean_db``), so tests can commit for real, run
concurrent requests and still never see each other's rows.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
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

IS_POSTGRES = os.environ["DATABASE_URL"].startswith("postgresql")

pytest_plugins = ["tests.fixtures.people", "tests.fixtures.events"]


def pytest_report_header() -> str:
    return f"database: {os.environ['DATABASE_URL']}"


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
    from app.faces.service import forget_galleries

    truncate_all()
    forget_galleries()
    throttle.reset()
    yield
    truncate_all()
    forget_galleries()
    throttle.reset()


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


@pytest.fixture
def session(clean_db: None) -> Iterator[Session]:
    with get_sessionmaker()() as s:
        yield s


@pytest.fixture
def client(clean_db: None) -> Iterator[TestClient]:
    from main import app

    with TestClient(app) as c:
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
