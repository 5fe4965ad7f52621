"""Before/after timings of every hot query of ``app.core.indexes`` on PostgreSQL tables of realistic size.

Usage: .venv/bin/python benchmarks/index_impact.py [--database-url URL] [--scale 1.0] [--runs 20]

URL defaults to postgresql://postgres@127.0.0.1:5432/idxbench, a scratch database: it is
created if missing and its ``public`` schema is dropped and re-migrated on every run (the
database name must contain "bench", so a real one is never wiped by mistake). At scale 1:
100,000 guests, 20 events, 110,000 memberships, 20,000 photos, 200,000 faces (512-byte
descriptors, as stored by the app), 100,000 selfies and 1,000,000 face matches, generated
in SQL with ``generate_series``. Then, like the original production schema, no
performance index at all (the unique ones included); ``VACUUM ANALYZE``; each hot query
timed (median of ``--runs`` executions, parameters cycling over existing rows); the
indexes added with ``app.ops.indexes.apply_indexes`` (what a DBA runs); timed again.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.core.config import sqlalchemy_url
from app.core.indexes import PERFORMANCE_INDEXES, IndexDef
from app.core.migrations import upgrade
from app.ops import indexes as indexes_script

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/idxbench"
EVENTS = 20
FACES_PER_PHOTO = 10
MATCHES_PER_SELFIE = 10

FIRST = [
    "Maria", "Jose", "Anna", "David", "Sofia", "Lucas", "Emma", "Noah", "Olivia", "Liam", "Mia", "Ethan",
    "Chloe", "Mateo", "Lea", "Hugo", "Zoe", "Arthur", "Ines", "Tom", "Sara", "Yuki", "Amir", "Nina",
]  # fmt: skip
LAST = [
    "Garcia", "Smith", "Muller", "Rossi", "Martin", "Silva", "Kowalski", "Nguyen", "Dubois", "Jensen",
    "Novak", "Tanaka", "Okafor", "Haddad", "Ivanova", "Lopez", "Brown", "Costa", "Bernard", "Kim",
]  # fmt: skip
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "example.org"]


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def fill_statements(scale: float) -> list[tuple[str, str]]:
    """(table, INSERT ... SELECT generate_series ...) for every table, in FK order."""
    guests = max(200, round(100_000 * scale))
    photos = max(EVENTS * 50, round(20_000 * scale))
    first, last, domains = sql_array(FIRST), sql_array(LAST), sql_array(DOMAINS)
    # Guest g is user 20 + g; organizer e (user e) runs event e.
    name = f"({first})[1 + g % {len(FIRST)}] || '.' || ({last})[1 + (g / {len(FIRST)}) % {len(LAST)}]"
    return [
        (
            "users",
            f"""INSERT INTO users (id, username, email, password_hash, display_name, role,
                   created_at, updated_at)
            SELECT e, 'organizer' || e, 'organizer' || e || '@events.example.com', '$argon2id$x', NULL,
                   'organizer', now() - interval '400 days', now() - interval '400 days'
            FROM generate_series(1, {EVENTS}) e
            UNION ALL
            SELECT {EVENTS} + g, {name} || g,
                   lower({name}) || g || '@' || ({domains})[1 + g % {len(DOMAINS)}],
                   '$argon2id$v=19$m=19456,t=2,p=1$' || md5(g::text), {name}, 'guest',
                   now() - (g || ' minutes')::interval, now() - (g || ' minutes')::interval
            FROM generate_series(1, {guests}) g""",  # noqa: S608
        ),
        (
            "events",
            f"""INSERT INTO events (id, code, join_token, name, starts_at, ends_at, is_open,
                   organizer_id, created_at, updated_at)
            SELECT e, 'EVENT' || e || '-' || upper(substr(md5(e::text), 1, 8)), md5('join' || e),
                   'Event ' || e,
                   now() - (e * 10 || ' days')::interval, now() - (e * 10 - 1 || ' days')::interval,
                   e > 15, e, now() - (e * 12 || ' days')::interval, now()
            FROM generate_series(1, {EVENTS}) e""",  # noqa: S608
        ),
        (
            "event_memberships",
            f"""INSERT INTO event_memberships (user_id, event_id, joined_at)
            SELECT {EVENTS} + g, 1 + g % {EVENTS}, now() - (g || ' minutes')::interval
            FROM generate_series(1, {guests}) g
            UNION ALL
            SELECT {EVENTS} + g, 1 + (g + 7) % {EVENTS}, now() - (g || ' seconds')::interval
            FROM generate_series(10, {guests}, 10) g""",  # noqa: S608
        ),
        (
            "photos",
            # Uploaded in batches of 50 per event; the newest 1% still pending, a few failed.
            f"""INSERT INTO photos (id, event_id, uploaded_by, filename, original_key, original_format,
                   size_bytes, width, height, served_key, served_media_type, thumbnail_key, faces_count,
                   created_at, indexed_at, status, attempts)
            SELECT p, 1 + ((p - 1) / 50) % {EVENTS}, 1 + ((p - 1) / 50) % {EVENTS},
                   'IMG_' || lpad(p::text, 6, '0') || '.JPG', 'originals/' || md5(p::text) || '.jpg', 'jpeg',
                   2500000 + p % 5000000, 6000, 4000, 'served/' || md5(p::text) || '.jpg', 'image/jpeg',
                   'thumbs/' || md5(p::text) || '.jpg', {FACES_PER_PHOTO},
                   now() - ({photos} - p || ' seconds')::interval, now(),
                   CASE WHEN p > {photos} * 0.99 THEN 'pending'
                        WHEN p > {photos} * 0.985 THEN 'processing'
                        WHEN p % 97 = 0 THEN 'failed' ELSE 'indexed' END,
                   1
            FROM generate_series(1, {photos}) p""",  # noqa: S608
        ),
        (
            "faces",
            f"""INSERT INTO faces (id, photo_id, event_id, "left", top, "right", bottom, descriptor)
            SELECT f, 1 + (f - 1) / {FACES_PER_PHOTO}, 1 + ((f - 1) / {FACES_PER_PHOTO} / 50) % {EVENTS},
                   f % 5000, f % 3000, f % 5000 + 200, f % 3000 + 200, decode(repeat(md5(f::text), 32), 'hex')
            FROM generate_series(1, {photos * FACES_PER_PHOTO}) f""",  # noqa: S608
        ),
        (
            "selfies",
            f"""INSERT INTO selfies (id, user_id, image_key, strict, descriptor, created_at, checked_at,
                   matched_at, status, attempts)
            SELECT s, {EVENTS} + s, 'selfies/' || md5(s::text) || '.jpg', true,
                   decode(repeat(md5(s::text), 32), 'hex'), now() - (s || ' minutes')::interval, now(), now(),
                   CASE WHEN s > {guests} * 0.995 THEN 'pending' WHEN s % 50 = 0 THEN 'rejected'
                        ELSE 'ready' END,
                   1
            FROM generate_series(1, {guests}) s""",  # noqa: S608
        ),
        (
            "face_matches",
            # Selfie s (guest s) matches 10 distinct photos of the guest's event.
            f"""INSERT INTO face_matches (selfie_id, user_id, event_id, photo_id, face_id, distance,
                   created_at)
            SELECT s, {EVENTS} + s, ep.event_id, ep.id, (ep.id - 1) * {FACES_PER_PHOTO} + 1 + (s + k) % 10,
                   0.25 + random() * 0.25, now()
            FROM generate_series(1, {guests}) s
            CROSS JOIN generate_series(0, {MATCHES_PER_SELFIE - 1}) k
            JOIN event_counts ec ON ec.event_id = 1 + s % {EVENTS}
            JOIN event_photos ep ON ep.event_id = ec.event_id AND ep.rn = 1 + (s * 37 + k) % ec.cnt""",  # noqa: S608
        ),
    ]


def to_pyformat(query: str) -> str:
    """``:name`` -> ``%(name)s``, to time queries on the raw DBAPI cursor (no ORM overhead)."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", query.replace("%", "%%"))


class Samples:
    """Existing rows to take parameters from, so every timed query finds something."""

    def __init__(self, conn: Connection, n: int, rng: random.Random) -> None:
        def some(sql: str) -> list[Any]:
            rows = list(conn.execute(text(sql)).scalars())
            return rng.sample(rows, min(n, len(rows)))

        self.codes = some("SELECT code FROM events")
        self.usernames = some("SELECT lower(username) FROM users WHERE role = 'guest' ORDER BY id LIMIT 5000")
        self.emails = some("SELECT lower(email) FROM users WHERE role = 'guest' ORDER BY id DESC LIMIT 5000")
        self.users = some("SELECT user_id FROM face_matches WHERE id % 97 = 0 LIMIT 5000")
        self.events = some("SELECT id FROM events")
        self.photos = some("SELECT photo_id FROM face_matches WHERE id % 89 = 0 LIMIT 5000")

    def params(self, d: IndexDef, i: int) -> dict[str, Any]:
        names = set(re.findall(r"(?<!:):(\w+)", d.query))

        def pick(values: list[Any]) -> Any:
            return values[i % len(values)]

        event = pick(self.events)
        values: dict[str, Callable[[], Any]] = {
            "code": lambda: pick(self.codes),
            "v": lambda: pick(self.emails if "email" in d.query else self.usernames),
            "user_id": lambda: pick(self.users),
            "event_id": lambda: event,
            "photo_id": lambda: pick(self.photos),
            # A worker's first load of the gallery (later refreshes start near the last id,
            # where the primary key serves as well).
            "after": lambda: 0,
        }
        unknown = names - values.keys()
        if unknown:
            raise SystemExit(f"{d.name}: no sample values for parameter(s) {sorted(unknown)}")
        return {name: values[name]() for name in names}


def time_queries(engine: Engine, samples: Samples, runs: int) -> dict[str, float]:
    """Median milliseconds per query (client side, rows fetched), after one warm-up run."""
    medians: dict[str, float] = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for d in PERFORMANCE_INDEXES:
            sql = to_pyformat(d.query)
            cur.execute(sql, samples.params(d, runs))
            cur.fetchall()
            times = []
            for i in range(runs):
                params = samples.params(d, i)
                start = time.perf_counter()
                cur.execute(sql, params)
                cur.fetchall()
                times.append((time.perf_counter() - start) * 1000)
            medians[d.name] = statistics.median(times)
        raw.rollback()
    finally:
        raw.close()
    return medians


def scans(engine: Engine, samples: Samples) -> dict[str, str]:
    """The access paths the planner picks for each query, e.g. "Parallel Seq Scan faces"."""
    found: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> Iterator[str]:
        if "Scan" in node["Node Type"]:
            parallel = "Parallel " if node.get("Parallel Aware") else ""
            yield parallel + " ".join(
                node[k] for k in ("Node Type", "Index Name", "Relation Name") if k in node
            )
        for child in node.get("Plans", []):
            yield from walk(child)

    with engine.connect() as conn:
        for d in PERFORMANCE_INDEXES:
            plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {d.query}"), samples.params(d, 0)).scalar_one()
            found[d.name] = ", ".join(walk(plan[0]["Plan"]))
    return found


@contextmanager
def step(label: str) -> Iterator[None]:
    print(f"{label} ...", end=" ", flush=True)
    start = time.perf_counter()
    yield
    print(f"{time.perf_counter() - start:.1f} s", flush=True)


def prepare_database(url: str) -> None:
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database})
        if exists.first() is None:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    server.dispose()
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def fill(engine: Engine, scale: float) -> dict[str, int]:
    with engine.begin() as conn:
        for d in PERFORMANCE_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {d.name}"))
        # Scratch data generated consistent by construction: skip the per-row FK triggers.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table, sql in fill_statements(scale):
            if table == "face_matches":
                # Both join keys computable from (s, k): hash joins, not 1,000 candidate photos per row.
                conn.execute(
                    text(
                        "CREATE TEMP TABLE event_photos ON COMMIT DROP AS SELECT id, event_id,"
                        " row_number() OVER (PARTITION BY event_id ORDER BY id) AS rn FROM photos"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TEMP TABLE event_counts ON COMMIT DROP AS"
                        " SELECT event_id, count(*) AS cnt FROM photos GROUP BY event_id"
                    )
                )
                conn.execute(text("ANALYZE event_photos"))
                conn.execute(text("ANALYZE event_counts"))
            with step(f"  {table:<18}"):
                conn.execute(text(sql))
        for table in ("users", "events", "event_memberships", "photos", "faces", "selfies", "face_matches"):
            conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")  # noqa: S608
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        with step("  VACUUM ANALYZE    "):
            conn.execute(text("VACUUM ANALYZE"))
        rows = conn.execute(
            text(
                "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables"
                " WHERE relname <> 'alembic_version' ORDER BY pg_total_relation_size(relid) DESC"
            )
        ).all()
    for name, count, size in rows:
        print(f"  {name:<18} {count:>10,} rows {size / 2**20:>8.1f} MiB")
    return {name: count for name, count, _ in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=DEFAULT_URL, help=f"scratch database (default {DEFAULT_URL})"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="row counts multiplier (default 1.0)")
    parser.add_argument("--runs", type=int, default=20, help="timed executions per query (default 20)")
    args = parser.parse_args(argv)

    url = sqlalchemy_url(args.database_url)
    target = make_url(url)
    if target.get_backend_name() != "postgresql" or "bench" not in (target.database or ""):
        print("error: needs a PostgreSQL database whose name contains 'bench' (it is wiped)", file=sys.stderr)
        return 2
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    print("$", shlex.join([python, *sys.argv]) if argv is None else shlex.join([python, __file__, *argv]))
    began = time.perf_counter()

    with step(f"migrating {target.render_as_string(hide_password=True)}"):
        prepare_database(url)
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
        settings = {
            s: conn.execute(text(f"SHOW {s}")).scalar_one()
            for s in ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather")
        }
    print(f"PostgreSQL {version}; " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print(f"filling (scale {args.scale}), no performance index:")
    fill(engine, args.scale)
    with engine.connect() as conn:
        samples = Samples(conn, max(args.runs, 20), random.Random(42))

    with step(f"timing {len(PERFORMANCE_INDEXES)} queries without the indexes"):
        before = time_queries(engine, samples, args.runs)
        plans_before = scans(engine, samples)

    print("app.ops.indexes.apply_indexes (what add_performance_indexes.py runs):")
    results = indexes_script.apply_indexes(engine)
    print(indexes_script.format_table(results))
    print(indexes_script.summary(results, sum(r.seconds for r in results)))
    if not all(r.ok for r in results):
        return 1

    with step(f"timing {len(PERFORMANCE_INDEXES)} queries with the indexes"):
        after = time_queries(engine, samples, args.runs)
        plans_after = scans(engine, samples)
    engine.dispose()

    print(f"\nmedian of {args.runs} runs, milliseconds (client side, rows fetched):")
    width = max(len(d.name) for d in PERFORMANCE_INDEXES)
    print(f"{'index':<{width}}  {'before':>9}  {'after':>8}  {'speed-up':>9}  serves")
    for d in PERFORMANCE_INDEXES:
        b, a = before[d.name], after[d.name]
        print(f"{d.name:<{width}}  {b:>9.2f}  {a:>8.3f}  {b / a:>8.0f}x  {d.serves}")
    print("\nplans (scan nodes) before -> after:")
    for d in PERFORMANCE_INDEXES:
        print(f"{d.name:<{width}}  {plans_before[d.name]} -> {plans_after[d.name]}")
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
