"""Database behaviour: SQLite pragmas, bounded pool waits, the health check."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from app.core import database
from app.core.config import Settings, get_settings
from tests.conftest import IS_POSTGRES


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite only")
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys() -> None:
    with database.get_engine().connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == get_settings().sqlite_busy_timeout_ms


def test_health_check_is_200_when_the_database_answers(client: TestClient) -> None:
    r = client.get("/api/health-check")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"]["ok"] is True


@pytest.fixture
def swapped_engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[Engine], Engine]:
    def swap(engine: Engine) -> Engine:
        monkeypatch.setattr(database, "_engine", engine)
        monkeypatch.setattr(database, "_sessionmaker", sessionmaker(bind=engine, expire_on_commit=False))
        return engine

    return swap


def test_health_check_is_503_with_the_reason_when_the_database_is_down(
    client: TestClient, swapped_engine: Callable[[Engine], Engine]
) -> None:
    down = Settings(database_url="postgresql://postgres@127.0.0.1:9/nothing", db_connect_timeout=1)
    engine = swapped_engine(database.build_engine(down))
    r = client.get("/api/health-check")
    engine.dispose()
    assert r.status_code == 503
    body = r.json()
    assert body["error"]["code"] == "database_unavailable"
    assert "unreachable" in body["database"]["reason"]
    assert r.headers["retry-after"]


def test_a_request_whose_database_is_down_is_a_503_not_a_500(client: TestClient, swapped_engine) -> None:  # type: ignore[no-untyped-def]
    down = Settings(database_url="postgresql://postgres@127.0.0.1:9/nothing", db_connect_timeout=1)
    engine = swapped_engine(database.build_engine(down))
    r = client.post("/api/check-event-code", json={"code": "ABC-2345"})
    engine.dispose()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database_unavailable"


def test_an_exhausted_pool_answers_503_within_the_pool_timeout(client: TestClient, swapped_engine) -> None:  # type: ignore[no-untyped-def]
    tiny = get_settings().model_copy(update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 0.5})
    engine = swapped_engine(database.build_engine(tiny))
    held = engine.connect()
    release = threading.Timer(5, held.close)
    release.start()
    try:
        start = time.monotonic()
        r = client.post("/api/check-event-code", json={"code": "ABC-2345"})
        elapsed = time.monotonic() - start
    finally:
        release.cancel()
        held.close()
        engine.dispose()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "db_pool_exhausted"
    assert r.headers["retry-after"] == "1"
    assert elapsed < 2.5


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite only")
def test_a_sqlite_writer_holds_the_write_queue_from_its_first_write_to_its_commit(clean_db: None) -> None:
    from filelock import FileLock
    from filelock import Timeout as LockTimeout

    from app.accounts.models import User

    lock = FileLock(f"{database.get_engine().url.database}.write-lock", timeout=0, thread_local=False)
    with database.get_sessionmaker()() as session:
        session.scalar(text("SELECT count(*) FROM users"))  # reading takes no place in the queue
        lock.acquire()
        lock.release()
        session.add(User(username="queued", email="queued@example.com", password_hash="x", role="guest"))
        session.flush()
        with pytest.raises(LockTimeout):
            lock.acquire()
        session.rollback()
        lock.acquire()  # released by the rollback
        lock.release()
        session.add(User(username="queued", email="queued@example.com", password_hash="x", role="guest"))
        session.commit()
        lock.acquire()  # and by the commit
        lock.release()


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite only")
def test_concurrent_sqlite_writers_all_get_in_without_database_is_locked(clean_db: None) -> None:
    from app.accounts.models import User

    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(10):
                with database.session_scope() as session:
                    session.add(
                        User(
                            username=f"w{i}n{j}",
                            email=f"w{i}n{j}@example.com",
                            password_hash="x",
                            role="guest",
                        )
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with database.get_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 120
