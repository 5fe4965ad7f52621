"""Health probes (the database answering and taking writes, the media disk's room),
database figures and statistics for the operations endpoints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text

from app.accounts.models import Role, User
from app.core.config import get_settings
from app.core.database import get_engine, pool_status, session_scope, write_blocked
from app.core.indexes import PERFORMANCE_INDEXES, QUERY_PARAMS
from app.core.storage import space
from app.events.models import Event
from app.ops import stats
from app.photos.models import Photo, PhotoStatus
from app.selfies.models import Selfie, SelfieStatus


@dataclass(frozen=True)
class DatabaseHealth:
    ok: bool
    latency_ms: float
    reason: str | None = None  # for anyone
    detail: str | None = None  # the driver's words (hosts, drivers): for operators only


def check_database() -> DatabaseHealth:
    """Whether the database answers, and whether a write could start now (a write-locked
    SQLite file answers reads but makes every login wait, then fail)."""
    start = time.perf_counter()
    detail = None
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        blocked = write_blocked(get_engine(), get_settings().health_write_timeout)
    except sa_exc.TimeoutError:
        reason = "database pool exhausted"
    except sa_exc.DBAPIError as exc:
        reason = "database unreachable"
        detail = str(exc.orig).strip().splitlines()[0][:200]
    else:
        if blocked is None:
            return DatabaseHealth(ok=True, latency_ms=(time.perf_counter() - start) * 1000)
        reason, detail = "database locked: writes cannot start", blocked
    latency = (time.perf_counter() - start) * 1000
    return DatabaseHealth(ok=False, latency_ms=latency, reason=reason, detail=detail)


@dataclass(frozen=True)
class StorageHealth:
    ok: bool
    reason: str | None = None  # for anyone
    free_bytes: int | None = None  # the figures: for operators only
    total_bytes: int | None = None
    min_free_bytes: int | None = None


def check_storage() -> StorageHealth:
    """The media disk's room (read at most once a second): not ok under its free-space floor,
    while uploads are refused. A bucket's room is not ours to watch."""
    settings = get_settings()
    if not space.watched(settings):
        return StorageHealth(ok=True)
    try:
        disk = space.reading(settings)
    except OSError as exc:
        return StorageHealth(ok=False, reason=f"media disk unreadable: {exc.strerror}")
    reason = "media disk under its free-space floor: uploads refused" if disk.below_floor else None
    return StorageHealth(
        ok=not disk.below_floor,
        reason=reason,
        free_bytes=disk.free_bytes,
        total_bytes=disk.total_bytes,
        min_free_bytes=disk.min_free_bytes,
    )


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def db_raw_test() -> dict[str, Any]:
    """A raw round trip, one representative indexed query, and the pool's state."""
    engine = get_engine()
    probe = next(d for d in PERFORMANCE_INDEXES if d.name == "uq_users_username_lower")
    start = time.perf_counter()
    with engine.connect() as conn:
        connect_ms = _ms(start)
        start = time.perf_counter()
        conn.exec_driver_sql("SELECT 1").scalar()
        raw_ms = _ms(start)
        start = time.perf_counter()
        conn.execute(text(probe.query), QUERY_PARAMS).all()
        query_ms = _ms(start)
    return {
        "database": engine.dialect.name,
        "connection_checkout_ms": connect_ms,
        "raw_select_1_ms": raw_ms,
        "indexed_query": {"index": probe.name, "sql": probe.query, "ms": query_ms},
        "pool": pool_status(engine),
    }


def database_figures() -> dict[str, Any]:
    with session_scope() as session:
        photo_rows = session.execute(select(Photo.status, func.count()).group_by(Photo.status))
        photos: dict[str, int] = {status: n for status, n in photo_rows}
        selfie_rows = session.execute(select(Selfie.status, func.count()).group_by(Selfie.status))
        selfies: dict[str, int] = {status: n for status, n in selfie_rows}
        selfies_leased = session.scalar(
            select(func.count()).select_from(Selfie).where(Selfie.lease_owner.is_not(None))
        )
        faces = session.scalar(select(func.coalesce(func.sum(Photo.faces_count), 0))) or 0
        guests = session.scalar(select(func.count()).select_from(User).where(User.role == Role.guest)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
    return {
        "photos": {s.value: int(photos.get(s, 0)) for s in PhotoStatus},
        "selfies": {s.value: int(selfies.get(s, 0)) for s in SelfieStatus},
        "selfies_leased": int(selfies_leased or 0),
        "faces_indexed": int(faces),
        "guests_registered": int(guests),
        "events": int(events),
    }


def server_stats() -> dict[str, Any]:
    figures = database_figures()
    photos, selfies = figures["photos"], figures["selfies"]
    return {
        "uptime_seconds": round(time.time() - stats.server_started_at(), 1),
        "requests": stats.request_figures(),
        "face_jobs": {
            "pending": photos["pending"]
            + selfies["pending"]
            + selfies["matching"]
            - figures["selfies_leased"],
            "processing": photos["processing"] + figures["selfies_leased"],
            "failed": photos["failed"] + selfies["failed"],
            "photos": photos,
            "selfies": selfies,
        },
        "photos_indexed": photos["indexed"],
        "faces_indexed": figures["faces_indexed"],
        "guests_registered": figures["guests_registered"],
        "events": figures["events"],
    }


def warm_up() -> None:
    """Pay a new worker's one-time costs (first connections, statement compilation, the
    dummy password hash) before it takes traffic, not on its first guests' requests."""
    from app.accounts import service as accounts
    from app.core import security
    from app.events import service as events
    from app.selfies import service as selfies

    with session_scope() as session:
        events.get_event_by_code(session=session, code="WARM-UP")
        accounts.get_user_by_login(session=session, login="warm-up")
        accounts.get_user_by_login(session=session, login="warm-up@example.com")
        accounts.get_user(session=session, user_id=0)
        events.user_events(session=session, user_id=0)
        selfies.my_photos(session=session, user_id=0, event_id=None)
        selfies.latest_selfie(session=session, user_id=0)
    security.verify_password(None, "warm-up")
    security.decode_access_token(security.create_access_token(subject="0"))


class DatabaseCollector(Collector):
    """Queue depth and totals read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = database_figures()
        jobs = GaugeMetricFamily("face_jobs", "Face jobs by kind and status.", labels=["kind", "status"])
        for kind in ("photos", "selfies"):
            for status, n in figures[kind].items():
                jobs.add_metric([kind, status], n)
        yield jobs
        for name in ("faces_indexed", "guests_registered", "events"):
            yield GaugeMetricFamily(name, name.replace("_", " ").capitalize() + ".", value=figures[name])
