"""Errors on pages: the same handlers as the API, rendered for people.

The API's handlers (``core.errors``) answer JSON everywhere. On a page (any path outside
``/api``, the docs and the ops endpoints), the same answer becomes an HTML page with the
message for people in the visitor's language, and a 401 becomes the log-in page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.web.forms import to_login
from app.web.i18n import language_for
from app.web.templating import error_text, render

_NOT_PAGES = ("/api/", "/docs", "/openapi.json", "/metrics", "/static/")

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def is_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(_NOT_PAGES) and not request.headers.get("HX-Request")


def _for_pages(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Any) -> Response:
        answer = handler(request, exc)
        response = await answer if isinstance(answer, Awaitable) else answer
        if not is_page(request) or not isinstance(response, JSONResponse):
            return response
        if response.status_code == 401:
            return to_login(request)
        error = json.loads(bytes(response.body)).get("error", {})
        message = error_text(language_for(request), error.get("code", ""), error.get("message", ""))
        page = render(request, "error.html", {"message": message}, status_code=response.status_code)
        if "Retry-After" in response.headers:
            page.headers["Retry-After"] = response.headers["Retry-After"]
        return page

    return handle


def install_page_errors(app: FastAPI) -> None:
    """Wrap every error handler already installed so pages get HTML."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _for_pages(handler)
