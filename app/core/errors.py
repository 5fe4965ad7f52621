"""Domain errors and the one JSON error shape.

Every error the API returns has the body ``{"error": {"code", "message", ...}}``.
Services raise :class:`AppError` subclasses that carry their HTTP status and
machine-readable code; :func:`install_error_handlers` renders them, FastAPI's
validation errors, HTTP errors and anything unexpected in that same shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


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


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}},
        status_code=status_code,
        headers=headers,
    )


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's "input" and "ctx" can hold huge or unserialisable values.
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(loc), "message": str(err.get("msg", "")), "type": err.get("type")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    import logging

    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from sqlalchemy import exc as sa_exc
    from starlette.exceptions import HTTPException as StarletteHTTPException

    log = logging.getLogger("app.errors")

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> Any:
        return error_response(exc.status_code, exc.code, exc.message, exc.headers, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Any:
        fields = _field_errors(exc.errors())
        if any(f["type"] == "json_invalid" for f in fields):
            return error_response(400, "invalid_json", "The request body is not valid JSON.")
        first = fields[0] if fields else {"field": "", "message": "invalid"}
        where = f"{first['field']}: " if first["field"] else ""
        return error_response(422, "validation_error", f"{where}{first['message']}", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Any:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_timeout(_request: Request, exc: sa_exc.TimeoutError) -> Any:
        log.warning("database pool exhausted: %s", exc)
        return error_response(
            503,
            "db_pool_exhausted",
            "All database connections are busy; retry shortly.",
            {"Retry-After": "1"},
        )

    @app.exception_handler(sa_exc.IntegrityError)
    async def _integrity_error(_request: Request, exc: sa_exc.IntegrityError) -> Any:
        # A uniqueness race that a service did not map to a domain error: still a
        # conflict for the client, never a 500.
        log.warning("integrity error: %s", exc.orig)
        return error_response(409, "conflict", "This conflicts with a concurrent change; retry.")

    @app.exception_handler(sa_exc.OperationalError)
    async def _db_unavailable(_request: Request, exc: sa_exc.OperationalError) -> Any:
        log.error("database error: %s", exc.orig)
        return error_response(
            503,
            "database_unavailable",
            "The database is unavailable; retry shortly.",
            {"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Any:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "An unexpected error occurred.")
