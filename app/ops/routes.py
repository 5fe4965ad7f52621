"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.ops.service import check_database

router = APIRouter(prefix="/api", tags=["ops"])


@router.get("/health-check", responses={503: {"description": "The database is not reachable."}})
def health_check() -> Any:
    """200 when the service and its database answer; 503 with the reason when not."""
    db = check_database()
    body = {
        "status": "ok" if db.ok else "degraded",
        "database": {"ok": db.ok, "latency_ms": round(db.latency_ms, 2), "reason": db.reason},
    }
    if db.ok:
        return body
    return JSONResponse(
        {"error": {"code": "database_unavailable", "message": db.reason}, **body},
        status_code=503,
        headers={"Retry-After": "2"},
    )
