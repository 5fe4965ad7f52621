"""``add_performance_indexes.py`` on the suite's database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

Most tests start from a schema that lacks every performance index, as the original
production database did, and a fixture puts them back afterwards: the unique ones keep
the rest of the suite honest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from app.core.database import get_engine
from app.core.indexes import PERFORMANCE_INDEXES, QUERY_PARAMS, IndexDef, create_index_sql
from app.core.migrations import alembic_config
from app.models import metadata
from app.ops import indexes as script
from tests.conftest import IS_POSTGRES, truncate_all

ROOT = Path(__file__).resolve().parents[2]
NAMES = {d.name for d in PERFORMANCE_INDEXES}
BY_NAME = {d.name: d for d in PERFORMANCE_INDEXES}


# -- helpers ------------------------------------------------------------------------------------


def catalog(conn: Connection) -> dict[str, tuple[str, bool]]:
    """Every index that is not a constraint's: name -> (table, valid)."""
    if IS_POSTGRES:
        rows = conn.execute(
            text(
                "SELECT c.relname, t.relname, i.indisvalid FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema()"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}
    # sql IS NULL: the automatic indexes behind SQLite's PRIMARY KEY / UNIQUE constraints.
    rows = conn.execute(
        text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    )
    return {r[0]: (r[1], True) for r in rows}


def present(engine: Engine) -> dict[str, tuple[str, bool]]:
    with engine.connect() as conn:
        return {name: v for name, v in catalog(conn).items() if name in NAMES}


def drop_all(engine: Engine) -> None:
    with engine.begin() as conn:
        for d in PERFORMANCE_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {d.name}"))


def restore_all(engine: Engine) -> None:
    # Rows a test left (duplicates) would stop the unique indexes; an INVALID one must go too.
    truncate_all()
    drop_all(engine)
    with engine.begin() as conn:
        for d in PERFORMANCE_INDEXES:
            conn.execute(text(create_index_sql(d)))
    assert present(engine) == {d.name: (d.table, True) for d in PERFORMANCE_INDEXES}


def plan(engine: Engine, d: IndexDef) -> str:
    params = {k: v for k, v in QUERY_PARAMS.items() if f":{k}" in d.query}
    with engine.begin() as conn:
        if IS_POSTGRES:
            # On a handful of rows a sequential scan always wins; forbid it so an index is
            # used whenever one can serve the query.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            rows: Iterable[str] = conn.execute(text(f"EXPLAIN {d.query}"), params).scalars()
        else:
            rows = (r[-1] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {d.query}"), params))
        return "\n".join(rows)


def run(engine: Engine, **kwargs: Any) -> dict[str, script.Result]:
    return {r.name: r for r in script.apply_indexes(engine, **kwargs)}


def seed(engine: Engine) -> None:
    """A few rows in every table, through plain inserts, with QUERY_PARAMS' values among them."""
    now = datetime.now(UTC)
    t = metadata.tables

    def insert(table: str, rows: list[dict[str, Any]]) -> list[int]:
        stmt = t[table].insert().returning(t[table].c.id, sort_by_parameter_order=True)
        return list(conn.execute(stmt, rows).scalars())

    user = {"password_hash": "x", "created_at": now, "updated_at": now}
    with engine.begin() as conn:
        (org,) = insert(
            "users", [{"username": "org", "email": "org@example.com", "role": "organizer", **user}]
        )
        names = ["alice", *(f"Guest{i}" for i in range(40))]
        guests = insert(
            "users", [{"username": n, "email": f"{n}@example.com", "role": "guest", **user} for n in names]
        )
        event = {"is_open": True, "organizer_id": org, "created_at": now, "updated_at": now}
        events = insert(
            "events",
            [{"code": c, "join_token": c, "name": c, **event} for c in (QUERY_PARAMS["code"], "WINTER-2B3C")],
        )
        insert(
            "event_memberships",
            [{"user_id": u, "event_id": events[i % 2], "joined_at": now} for i, u in enumerate(guests)],
        )
        job = {"attempts": 0, "created_at": now}
        selfies = insert(
            "selfies",
            [
                {
                    "user_id": u,
                    "image_key": f"s{u}",
                    "strict": True,
                    "status": "pending" if i % 10 else "ready",
                    **job,
                }
                for i, u in enumerate(guests)
            ],
        )
        photo = {"original_format": "jpeg", "size_bytes": 1, "width": 1, "height": 1, "faces_count": 2, **job}
        photos = insert(
            "photos",
            [
                {
                    "event_id": events[i % 2],
                    "filename": f"p{i}.jpg",
                    "original_key": f"p{i}",
                    "status": s,
                    **photo,
                }
                for i, s in enumerate(["indexed", "pending", "failed", "indexed"] * 8)
            ],
        )
        box = {"left": 0, "top": 0, "right": 1, "bottom": 1, "descriptor": b"\0" * 8}
        faces = insert(
            "faces",
            [{"photo_id": p, "event_id": events[i % 2], **box} for i, p in enumerate(photos) for _ in (1, 2)],
        )
        insert(
            "face_matches",
            [
                {
                    "selfie_id": s,
                    "user_id": u,
                    "event_id": events[i % 2],
                    "photo_id": photos[(i + 2 * k) % len(photos)],
                    "face_id": faces[2 * ((i + 2 * k) % len(photos))],
                    "distance": 0.1 * k,
                    "created_at": now,
                }
                for i, (s, u) in enumerate(zip(selfies, guests, strict=True))
                for k in range(3)
            ],
        )


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def engine(clean_db: None) -> Iterator[Engine]:
    """The suite's engine; every performance index is back in place after the test."""
    engine = get_engine()
    yield engine
    restore_all(engine)


@pytest.fixture
def without_indexes(engine: Engine) -> Engine:
    """A schema lacking every performance index, like the original production one."""
    drop_all(engine)
    assert present(engine) == {}
    return engine


# -- tests --------------------------------------------------------------------------------------


def test_each_hot_query_stops_scanning_and_uses_its_own_index(without_indexes: Engine) -> None:
    engine = without_indexes
    seed(engine)
    before = {d.name: plan(engine, d) for d in PERFORMANCE_INDEXES}

    results = run(engine)

    assert {r.status for r in results.values()} == {script.CREATED}
    after = {d.name: plan(engine, d) for d in PERFORMANCE_INDEXES}
    wrong_before = {n: p for n, p in before.items() if n in p}
    wrong_after = {n: p for n, p in after.items() if n not in p}
    assert not wrong_before, wrong_before
    assert not wrong_after, wrong_after


def test_creates_every_missing_index_and_a_second_run_changes_nothing(without_indexes: Engine) -> None:
    first = run(without_indexes)
    assert set(first) == NAMES
    assert all(r.status == script.CREATED and r.error is None for r in first.values())
    assert present(without_indexes) == {d.name: (d.table, True) for d in PERFORMANCE_INDEXES}

    statements: list[str] = []
    second = run(without_indexes, log=statements.append)

    assert all(r.status == script.PRESENT for r in second.values())
    assert statements == []  # neither CREATE nor ANALYZE


def test_check_exits_1_while_indexes_are_missing_and_0_once_added(
    without_indexes: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    url = os.environ["DATABASE_URL"]
    assert script.main(["--database-url", url, "--check"]) == 1
    assert capsys.readouterr().out.count(" missing ") == len(PERFORMANCE_INDEXES)
    assert present(without_indexes) == {}  # --check changed nothing

    assert script.main(["--database-url", url]) == 0
    assert script.main(["--database-url", url, "--check"]) == 0
    n = len(PERFORMANCE_INDEXES)
    assert f"{n} indexes: {n} already present" in capsys.readouterr().out.splitlines()[-1]


def test_dry_run_prints_the_sql_and_creates_nothing(
    without_indexes: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script.main(["--database-url", os.environ["DATABASE_URL"], "--dry-run"]) == 0

    out = capsys.readouterr().out
    for d in PERFORMANCE_INDEXES:
        assert create_index_sql(d, concurrently=IS_POSTGRES) in out
    assert "ANALYZE faces" in out
    assert present(without_indexes) == {}


def test_one_failing_index_does_not_stop_the_others(without_indexes: Engine) -> None:
    engine = without_indexes
    now = datetime.now(UTC)
    with engine.begin() as conn:
        org = conn.execute(
            text(
                "INSERT INTO users (username, email, password_hash, role, created_at, updated_at)"
                " VALUES ('org', 'org@example.com', 'x', 'organizer', :now, :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        for name in ("first", "second"):
            conn.execute(
                text(
                    "INSERT INTO events"
                    " (code, join_token, name, is_open, organizer_id, created_at, updated_at)"
                    " VALUES ('DUPE-CODE', :name, :name, true, :org, :now, :now)"
                ),
                {"name": name, "org": org, "now": now},
            )

    results = run(engine)

    failed = results.pop("uq_events_code")
    assert failed.status == script.FAILED and failed.error is not None
    assert "DUPE-CODE" in failed.error if IS_POSTGRES else "UNIQUE constraint failed" in failed.error
    if IS_POSTGRES:
        assert "INVALID index it left was dropped" in failed.error
    assert all(r.status == script.CREATED for r in results.values())
    assert set(present(engine)) == NAMES - {"uq_events_code"}  # no INVALID leftover either
    assert script.main(["--database-url", os.environ["DATABASE_URL"]]) == 1

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE name = 'second'"))
    again = run(engine)

    assert again["uq_events_code"].status == script.CREATED
    assert sum(r.status == script.PRESENT for r in again.values()) == len(PERFORMANCE_INDEXES) - 1


@pytest.mark.skipif(not IS_POSTGRES, reason="INVALID indexes exist on PostgreSQL only")
def test_invalid_index_left_by_an_interrupted_build_is_rebuilt(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_faces_photo_id'::regclass")
        )
    assert present(engine)["ix_faces_photo_id"] == ("faces", False)
    assert run(engine, check=True)["ix_faces_photo_id"].status == script.INVALID

    statements: list[str] = []
    results = run(engine, log=statements.append)

    assert results["ix_faces_photo_id"].status == script.REBUILT
    assert all(r.status == script.PRESENT for n, r in results.items() if n != "ix_faces_photo_id")
    assert statements == [
        "DROP INDEX CONCURRENTLY IF EXISTS ix_faces_photo_id",
        create_index_sql(BY_NAME["ix_faces_photo_id"], concurrently=True),
        "ANALYZE faces",
    ]
    assert present(engine)["ix_faces_photo_id"] == ("faces", True)


@pytest.mark.skipif(not IS_POSTGRES, reason="lock_timeout is a PostgreSQL setting")
def test_a_locked_table_times_out_and_the_other_tables_still_get_their_indexes(
    without_indexes: Engine,
) -> None:
    engine = without_indexes
    with engine.connect() as blocker:
        # A long transaction holding a lock that conflicts with a concurrent index build.
        blocker.execute(text("LOCK TABLE selfies IN SHARE MODE"))
        results = run(engine, lock_timeout="200ms")
        blocker.rollback()

    for name in ("ix_selfies_status_id", "ix_selfies_user_id"):
        assert results.pop(name).status == script.FAILED
    assert all(r.status == script.CREATED for r in results.values())
    assert set(present(engine)) == NAMES - {"ix_selfies_status_id", "ix_selfies_user_id"}
    assert run(engine)["ix_selfies_user_id"].status == script.CREATED


def test_migrated_schema_has_exactly_the_performance_indexes_and_models_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert catalog(conn) == {d.name: (d.table, True) for d in PERFORMANCE_INDEXES}
        assert model_vs_database(conn) == []

    drop_all(engine)
    with engine.connect() as conn:
        missing = {diff[1].name for diff in model_vs_database(conn) if diff[0] == "add_index"}
    # The comparison does see the indexes (SQLite cannot reflect lower(...) expressions).
    assert missing == {d.name for d in PERFORMANCE_INDEXES if IS_POSTGRES or "(" not in d.sql_columns()}


def model_vs_database(conn: Connection) -> list[Any]:
    with warnings.catch_warnings():
        if not IS_POSTGRES:
            warnings.filterwarnings("ignore", message=".*expression-based index")
        else:
            warnings.simplefilter("error")  # nothing may be skipped on PostgreSQL
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_script_runs_standalone_from_another_directory(without_indexes: Engine, tmp_path: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "add_performance_indexes.py"), "--database-url", url, "--check"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    url = os.environ["DATABASE_URL"]
    missing = check()
    assert missing.returncode == 1, missing.stderr
    assert "missing" in missing.stdout

    run(without_indexes)
    done = subprocess.run(
        [sys.executable, "add_performance_indexes.py", "--database-url", url, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(PERFORMANCE_INDEXES)} indexes: {len(PERFORMANCE_INDEXES)} already present" in done.stdout


def test_unmigrated_schema_is_refused_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").touch()

    with pytest.raises(script.SchemaNotMigrated):
        script.apply_indexes(url)
    assert script.main(["--database-url", url]) == 2
    assert "python -m app migrate" in capsys.readouterr().err
