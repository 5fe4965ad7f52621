"""Operations endpoints: health, a raw database probe, server-wide statistics, metrics.

``/api/stats``, ``/api/db-raw-test`` and ``/metrics`` require ``OPS_TOKEN`` (as a bearer
token or ``X-Ops-Token``) when it is set; the health check stays public for load balancers.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app.core import throttle
from app.core.config import get_settings
from app.core.errors import Unauthorized
from app.core.openapi import Tag, errors
from app.ops import metrics
from app.ops.middleware import load, overloaded
from app.ops.service import DatabaseCollector, check_database, check_storage, db_raw_test, server_stats


def ops_token_given(
    authorization: Annotated[str | None, Header()] = None,
    x_ops_token: Annotated[str | None, Header()] = None,
) -> bool:
    """Whether the request carries the operations token."""
    expected = get_settings().ops_key()
    given = x_ops_token or (authorization or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), expected.encode())


OpsToken = Annotated[bool, Depends(ops_token_given)]


def require_ops_token(ops: OpsToken) -> None:
    if not ops:
        raise Unauthorized(
            "This endpoint needs the operations token "
            "(OPS_TOKEN, or the one generated in DATA_DIR/ops_token).",
            code="ops_token_required",
        )


router = APIRouter(tags=[Tag.ops])
protected = APIRouter(tags=[Tag.ops], dependencies=[Depends(require_ops_token)])


@router.get(
    "/api/health-check",
    responses=errors(503),
)
def health_check(
    ops: OpsToken,
    ready: Annotated[
        bool,
        Query(description="Readiness: also 503 `overloaded` while this worker refuses requests."),
    ] = False,
) -> Any:
    """Liveness and database readiness: 200, or 503 with the reason (the database down, or
    locked so that no write can start). A load balancer that should stop sending traffic to a
    worker that is refusing work asks with ``ready=1``. A media disk under its free-space floor
    is ``degraded`` with 200: uploads are refused (507) but everything else is served; so is a
    Redis that does not answer (``throttles``: each worker then counts on its own). The
    driver's own words about a database failure (hosts, driver) and the disk's figures are
    given only with the operations token."""
    db = check_database()
    disk = check_storage()
    throttles = throttle.backend_state()
    settings = get_settings()
    busy = ready and overloaded(settings.max_in_flight)
    status = "ok" if db.ok and disk.ok and throttles.state == "ok" and not busy else "degraded"
    if db.ok and busy:
        status = "overloaded"
    figures = {
        "free_bytes": disk.free_bytes,
        "total_bytes": disk.total_bytes,
        "min_free_bytes": disk.min_free_bytes,
    }
    body = {
        "status": status,
        "database": {
            "ok": db.ok,
            "latency_ms": round(db.latency_ms, 2),
            "reason": db.reason,
            **({"detail": db.detail} if ops and db.detail else {}),
        },
        "storage": {
            "ok": disk.ok,
            "reason": disk.reason,
            **(figures if ops and disk.free_bytes is not None else {}),
        },
        "throttles": {
            "state": throttles.state,
            "store": throttles.store,
            "reason": throttles.reason,
            **({"detail": throttles.detail} if ops and throttles.detail else {}),
        },
        "in_flight": {"now": load.in_flight, "max": settings.max_in_flight},
    }
    if db.ok and not busy:
        return body
    error = (
        {"code": "database_unavailable", "message": db.reason}
        if not db.ok
        else {"code": "overloaded", "message": "This worker is refusing requests right now."}
    )
    return JSONResponse({"error": error, **body}, status_code=503, headers={"Retry-After": "2"})


@protected.get("/api/db-raw-test", responses=errors(401))
def db_raw() -> dict[str, Any]:
    """A raw SQL round trip and one indexed query with their timings, and the pool's state
    (size, checked out, overflow, threads waiting)."""
    return db_raw_test()


@protected.get("/api/stats", responses=errors(401))
def stats() -> dict[str, Any]:
    """Uptime; per-endpoint counts, errors, mean and p95 over the last minute and in total;
    requests in flight; face job queue; photos, faces, guests. For all workers together."""
    return server_stats()


@protected.get("/metrics", response_class=Response, responses=errors(401))
async def prometheus_metrics() -> Response:
    """Prometheus exposition format, summed over all Gunicorn workers; with the media disk's
    room (``storage_free_bytes``, ``storage_min_free_bytes``, ``storage_uploads_refused``)."""
    body, content_type = await run_in_threadpool(
        metrics.render, DatabaseCollector(), metrics.StorageCollector()
    )
    return Response(body, media_type=content_type)
