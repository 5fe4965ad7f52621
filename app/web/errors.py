"""Errors on pages: the API's errors (``AppError``), rendered for people.

Every error a request ends with becomes an ``AppError`` (``core.errors.as_app_error``). On a
page (any path outside ``/api``, the docs, the ops endpoints and static files, and not an htmx
fragment) it is the error page with the message for people in the visitor's language, and a
401 is the log-in page (``page_for_error``). A page route that catches an ``AppError`` to show
its form again calls ``error_page``, which first rolls back what the request did; an action
whose target may already be gone runs under ``unless_gone``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from app.accounts.models import User
from app.core.errors import AppError
from app.web.forms import to_login
from app.web.templating import error_message, render

_NOT_PAGES = ("/api/", "/docs", "/openapi.json", "/metrics", "/static/")


def is_page(request: Request) -> bool:
    """A request a person's browser makes for a page: outside the API's paths, not an htmx
    fragment, and not from a client that asks for JSON only (``/e/<code>`` is both)."""
    path = request.url.path
    accept = request.headers.get("accept", "")
    wants_json = "application/json" in accept and "text/html" not in accept
    return not path.startswith(_NOT_PAGES) and not request.headers.get("HX-Request") and not wants_json


def error_page(
    request: Request,
    error: AppError,
    *,
    session: Session | None = None,
    template: str = "error.html",
    context: Callable[[], dict[str, Any]] | dict[str, Any] | None = None,
    user: User | None = None,
) -> Response:
    """``template`` with the error's message for people (``error``) and the error's status.
    With ``session``, what the request did is rolled back first, and ``context`` (a function)
    reads what the page shows after the rollback."""
    if session is not None:
        session.rollback()
    values = context() if callable(context) else dict(context or {})
    page = render(
        request,
        template,
        {**values, "error": error_message(request, error)},
        user=user,
        status_code=error.status_code,
    )
    if "Retry-After" in error.headers:
        page.headers["Retry-After"] = error.headers["Retry-After"]
    return page


@contextmanager
def unless_gone(session: Session) -> Iterator[None]:
    """For an action whose target may already be gone (a second click, another tab): its
    ``AppError`` rolls back what was done and is not shown, the page shows the outcome."""
    try:
        yield
    except AppError:
        session.rollback()


def page_for_error(request: Request, error: AppError) -> Response | None:
    """The page answering ``error`` on a page (the log-in page for a 401), None elsewhere:
    the API answers it as JSON."""
    if not is_page(request):
        return None
    if error.status_code == 401:
        return to_login(request)
    return error_page(request, error)
