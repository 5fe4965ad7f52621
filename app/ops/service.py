"""Health probes of the service's dependencies."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from app.core.database import get_engine


@dataclass(frozen=True)
class DatabaseHealth:
    ok: bool
    latency_ms: float
    reason: str | None = None


def check_database() -> DatabaseHealth:
    start = time.perf_counter()
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except sa_exc.TimeoutError:
        reason = "database pool exhausted"
    except sa_exc.DBAPIError as exc:
        reason = f"database unreachable: {str(exc.orig).strip().splitlines()[0][:200]}"
    else:
        return DatabaseHealth(ok=True, latency_ms=(time.perf_counter() - start) * 1000)
    return DatabaseHealth(ok=False, latency_ms=(time.perf_counter() - start) * 1000, reason=reason)
