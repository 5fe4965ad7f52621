"""The OpenAPI document tells the truth about errors.

Every error has one shape, ``{"error": {"code", "message", ...}}`` (:class:`ErrorResponse`),
and each operation lists every status it can return: those its route declares with
:func:`errors` (``responses=errors(404, 410)``), and those that come from the layers every
request goes through, added here: 401 where a bearer token is required, 400 (malformed JSON),
408 (body too slow) and 413 (body too large) where there is a body, 422 where there are
parameters, 503 everywhere (database unavailable, or the worker overloaded).
"""

from __future__ import annotations

import base64
import hashlib
import re
from enum import StrEnum
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

#: The vendored Swagger UI (app/web/static/vendor/swagger-ui, from the npm package swagger-ui-dist).
SWAGGER_UI = "/static/vendor/swagger-ui"


class Tag(StrEnum):
    """The sections of the API document."""

    accounts = "accounts"
    events = "events"
    photos = "photos"
    selfies = "selfies"
    notifications = "notifications"
    ops = "ops"


_DESCRIPTIONS = {
    400: "`invalid_json`: the body is not valid JSON; `invalid_token`: a mailed link or code that no "
    "longer works (used, expired or replaced).",
    401: "`not_authenticated` / `invalid_token`: no valid access token (or `invalid_credentials`).",
    403: "`forbidden` / `organizer_required`: the token's user may not do this.",
    404: "Not found (`event_not_found`, `not_found`...).",
    408: "`request_timeout`: the body did not arrive in time.",
    409: "A conflict (`username_taken`, `email_taken`, `photo_not_ready`...).",
    410: "`event_closed`: the event no longer takes new guests.",
    413: "`payload_too_large` / `image_too_large` / `too_many_files`: too big.",
    415: "`unsupported_format`: not a JPEG, PNG, WebP or HEIC image.",
    422: "`validation_error` (with `fields`) or a domain rule (`weak_password`...).",
    429: "`too_many_requests`: throttled; retry after `Retry-After` seconds.",
    503: "`database_unavailable`, `db_pool_exhausted`, `storage_full` or `overloaded`: retry after "
    "`Retry-After` seconds.",
    507: "`storage_full`: the server keeps no room for new files right now; retry after `Retry-After`.",
}


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class ErrorDetail(BaseModel):
    """``code`` is stable and machine-readable; ``message`` is for people. Some errors add
    details (``fields`` for validation errors, ``retry_after``...)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    fields: list[FieldError] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that can answer these error statuses."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _error(status: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": _REF}}}


def _complete(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = {503}
    if operation.get("security"):
        wanted.add(401)
    body = operation.get("requestBody")
    if body:
        wanted |= {408, 413}
        if "application/json" in body.get("content", {}):
            wanted.add(400)
        if "multipart/form-data" in body.get("content", {}):
            wanted.add(507)  # an upload: the disk may be at its free-space floor
    if operation.get("parameters") or body:
        wanted.add(422)
    for status in sorted(wanted):
        responses.setdefault(str(status), _error(status))
    # FastAPI documents validation errors as {"detail": [...]}: ours have the one error shape.
    if "422" in responses:
        responses["422"] = _error(422)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                _complete(operation)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components["ErrorResponse"] = ErrorResponse.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name, sub in components["ErrorResponse"].pop("$defs", {}).items():
            components.setdefault(name, sub)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Swagger UI from the vendored files under /static (phones and closed networks reach
        no CDN)."""
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        )
        page.headers.update(docs_headers(bytes(page.body).decode()))
        return page


def docs_headers(html: str) -> dict[str, str]:
    """The headers of the Swagger UI page: our files only, and the page's one inline script
    allowed by its hash (Swagger UI sets styles inline and shows images as data: URLs)."""
    inline = [m for m in re.findall(r"<script>(.*?)</script>", html, re.S)]
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'" for m in inline
    )
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }
