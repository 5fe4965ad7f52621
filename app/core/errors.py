"""Domain errors and the one JSON error shape.

Every error the API returns has the body ``{"error": {"code", "message", ...}}``.
Services raise :class:`AppError` subclasses that carry their HTTP status and
machine-readable code; :func:`install_error_handlers` renders them, FastAPI's
validation errors, HTTP errors and anything unexpected in that same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import Response

_log = logging.getLogger("app.errors")


class AppError(Exception):
    """Base class: an error a client can act on, with its status and code."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "Bad request."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        self.message = message or type(self).message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflict."


class Gone(AppError):
    status_code = 410
    code = "gone"
    message = "Gone."


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"
    message = "Authentication required."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"
    message = "The request is not valid."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_format"
    message = "This file format is not supported."


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "The service is busy; retry shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        headers = kwargs.pop("headers", None) or {}
        headers.setdefault("Retry-After", str(retry_after))
        super().__init__(message, headers=headers, **kwargs)


# --- rendering -----------------------------------------------------------------------

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_format",
    429: "too_many_requests",
}


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's "input" and "ctx" can hold huge or unserialisable values.
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(loc), "message": str(err.get("msg", "")), "type": err.get("type")})
    return out


def as_app_error(exc: Exception) -> AppError:
    """Any exception a request can end with, as the ``AppError`` a client is told: domain
    errors as they are, FastAPI's validation and HTTP errors, database trouble (a full pool,
    an unmapped uniqueness race, a database that is down) and, last, anything unexpected."""
    from fastapi.exceptions import RequestValidationError
    from sqlalchemy import exc as sa_exc
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, RequestValidationError):
        fields = _field_errors(exc.errors())
        if any(f["type"] == "json_invalid" for f in fields):
            return AppError("The request body is not valid JSON.", code="invalid_json", status_code=400)
        first = fields[0] if fields else {"field": "", "message": "invalid"}
        where = f"{first['field']}: " if first["field"] else ""
        return Unprocessable(f"{where}{first['message']}", code="validation_error", fields=fields)
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return AppError(message, code=code, status_code=exc.status_code, headers=dict(exc.headers or {}))
    if isinstance(exc, sa_exc.TimeoutError):
        _log.warning("database pool exhausted: %s", exc)
        return ServiceUnavailable(
            "All database connections are busy; retry shortly.", code="db_pool_exhausted"
        )
    if isinstance(exc, sa_exc.IntegrityError):
        # A uniqueness race that a service did not map to a domain error: still a conflict
        # for the client, never a 500.
        _log.warning("integrity error: %s", exc.orig)
        return Conflict("This conflicts with a concurrent change; retry.", code="conflict")
    if isinstance(exc, sa_exc.OperationalError):
        _log.error("database error: %s", exc.orig)
        return ServiceUnavailable(
            "The database is unavailable; retry shortly.", code="database_unavailable", retry_after=2
        )
    _log.exception("unhandled error", exc_info=exc)
    return AppError("An unexpected error occurred.", code="internal_error", status_code=500)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at ``path`` (Starlette's 405 names only the first
    route's), found by asking the routes as a request of each method would."""
    from starlette.routing import Match

    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        scope: dict[str, Any] = {
            "type": "http",
            "path": path,
            "method": method,
            "root_path": "",
            "path_params": {},
        }
        if any(route.matches(scope)[0] == Match.FULL for route in app.routes):
            allowed.append(method)
    return allowed


def json_error(error: AppError) -> Any:
    """The API's answer for ``error``: ``{"error": {"code", "message", ...}}``."""
    from fastapi.responses import JSONResponse

    return JSONResponse(error.to_body(), status_code=error.status_code, headers=error.headers or None)


#: What the web pages make of an error: a page, or None when the request is not for a page.
PageRenderer = Callable[["Request", AppError], "Response | None"]


def install_error_handlers(app: FastAPI, *, page: PageRenderer | None = None) -> None:
    """One handler for every exception a request can end with: it becomes an ``AppError``
    (``as_app_error``), answered as a page by ``page`` when that gives one, else as JSON."""
    from fastapi.exceptions import RequestValidationError
    from sqlalchemy import exc as sa_exc
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def handle(request: Request, exc: Exception) -> Any:
        error = as_app_error(exc)
        if error.status_code == 405:
            error.headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        answer = page(request, error) if page is not None else None
        return answer if answer is not None else json_error(error)

    for kind in (
        AppError,
        RequestValidationError,
        StarletteHTTPException,
        sa_exc.TimeoutError,
        sa_exc.IntegrityError,
        sa_exc.OperationalError,
        Exception,
    ):
        app.add_exception_handler(kind, handle)
