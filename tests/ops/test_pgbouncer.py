"""Running behind a real PgBouncer (Debian's package, transaction pooling): the start-up
budget check reads the pooler's limits, many clients share a few PostgreSQL connections, and
idle face workers never LISTEN through the pooler (it cannot carry notifications)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from app.core.config import Settings
from app.core.database import build_engine
from app.jobs.wakeup import WakeListener
from app.ops import server as checks
from tests.conftest import IS_POSTGRES
from tools.harness.pgbouncer import running_pgbouncer, server_connections

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL only")]

DIRECT = os.environ.get("DATABASE_URL", "")


@pytest.fixture(scope="module")
def pooled() -> Iterator[str]:
    with running_pgbouncer(DIRECT, pool_size=4, max_client_conn=60) as url:
        yield url


def test_the_budget_check_reads_the_poolers_limits_and_checks_against_them(pooled: str) -> None:
    limits = checks.pgbouncer_limits(pooled)
    assert limits == checks.PoolerLimits(max_client_conn=60, default_pool_size=4)
    capacity = checks.postgres_capacity(pooled)  # forwarded to PostgreSQL through the pooler
    assert capacity is not None and capacity[0] >= 10

    # 8 workers x (30 + 70): far beyond PostgreSQL, and beyond what this pooler accepts.
    fits, lines = checks.budget_report(
        checks.Budget(8, 30, 70, 2), capacity, pooler=limits, behind_pooler=True
    )
    assert not fits and "max_client_conn" in "\n".join(lines)
    # 4 workers x (5 + 5) + 2 x 3 = 46 to the pooler: more than PostgreSQL's room of 20 would
    # allow directly, fine behind a pooler that opens 4.
    small = (20, 3, 10)
    assert not checks.budget_report(checks.Budget(4, 5, 5, 2), small)[0]
    fits, lines = checks.budget_report(checks.Budget(4, 5, 5, 2), small, pooler=limits, behind_pooler=True)
    assert fits, lines
    unknown = checks.budget_report(checks.Budget(4, 5, 5, 2), small, pooler=None, behind_pooler=True)
    assert unknown[0] and "could not be read" in unknown[1][-1]


def test_forty_clients_through_the_pooler_use_at_most_its_pool(pooled: str) -> None:
    engine = build_engine(
        Settings(database_url=pooled, db_pool_size=20, db_max_overflow=20, db_pool_timeout=30)
    )
    peak = 0

    def work(i: int) -> int:
        with engine.begin() as conn:
            return int(conn.execute(text("SELECT :i FROM pg_sleep(0.05)"), {"i": i}).scalar_one())

    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = pool.map(work, range(200))
            peak = max(peak, server_connections(DIRECT, DIRECT.rsplit("/", 1)[1]))
            assert sorted(results) == list(range(200))
        peak = max(peak, server_connections(DIRECT, DIRECT.rsplit("/", 1)[1]))
    finally:
        engine.dispose()
    assert 1 <= peak <= 4


def test_face_workers_behind_the_pooler_listen_only_on_a_direct_url(pooled: str) -> None:
    polling = WakeListener(Settings(database_url=pooled, database_pooler="pgbouncer"), "test-poll")
    try:
        assert polling._conn is None  # nothing LISTENs through the pooler
        assert polling.wait(0.05) is False
    finally:
        polling.close()
    direct = Settings(database_url=pooled, database_pooler="pgbouncer", database_listen_url=DIRECT)
    listening = WakeListener(direct, "test-listen")
    try:
        assert listening._conn is not None
        engine = build_engine(Settings(database_url=pooled))
        with engine.begin() as conn:  # a job queued through the pooler wakes the listener
            conn.execute(text("SELECT pg_notify('face_jobs', '')"))
        engine.dispose()
        assert listening.wait(10) is True
    finally:
        listening.close()
