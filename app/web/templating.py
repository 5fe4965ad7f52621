"""Rendering a page: the Jinja2 environment and what every template is given.

Every page gets the request's language and its translation functions, the signed-in user,
the CSRF token of this browser (its cookie is set on the response when it is new), the page's
own path with its query (``here``: the language switch comes back to it), and ``date`` to
write a day in the page's language.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.accounts import sessions
from app.accounts.models import User
from app.core import storage
from app.core.errors import AppError
from app.core.i18n import LANGUAGE_NAMES, LANGUAGES, language_for, translations
from app.web.messages import ERROR_MESSAGES

TEMPLATES = Path(__file__).parent / "templates"
# Pages hold personal data (never stored by a cache), load only our own files (no inline
# script: htmx is configured without eval), and are never framed by another site.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:{images}; script-src 'self'; "
    "style-src 'self'; connect-src 'self'{uploads}; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def page_headers() -> dict[str, str]:
    """Headers of every page. With S3 storage and presigned URLs, photos are redirected to
    the bucket, whose origin the pages then allow images from, and the organizer's page sends
    photos to it directly (``connect-src``)."""
    origin = storage.backend().public_origin()
    images = f" {origin}" if origin else ""
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": _CSP.format(images=images, uploads=images),
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "svg"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)


def error_text(language: str, code: str, fallback: str = "") -> str:
    """The message for people of an API error code, in ``language``."""
    message = ERROR_MESSAGES.get(code)
    return translations(language).gettext(message) if message else fallback


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: User | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    language = language_for(request)
    catalog = translations(language)

    # Jinja's "newstyle" gettext: named placeholders filled in (and escaped by autoescape).
    def gettext(message: str, **values: Any) -> str:
        text = catalog.gettext(message)
        return text % values if values else text

    def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
        return catalog.ngettext(singular, plural, num) % {"num": num, **values}

    def date(value: datetime | None) -> str:
        return format_date(value, format="long", locale=language) if value else ""

    csrf_cookie = sessions.ensure_csrf_cookie(request)
    page = environment.get_template(template).render(
        request=request,
        user=user,
        lang=language,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        csrf_token=sessions.csrf_token_for(request, csrf_cookie),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        date=date,
        _=gettext,
        gettext=gettext,
        ngettext=ngettext,
        error_text=lambda code, fallback="": error_text(language, code, fallback),
        **(context or {}),
    )
    response = HTMLResponse(page, status_code=status_code, headers=page_headers())
    if request.cookies.get(sessions.CSRF_COOKIE) != csrf_cookie:
        sessions.set_csrf_cookie(response, csrf_cookie)
    return response


def error_message(request: Request, exc: AppError) -> str:
    return error_text(language_for(request), exc.code, exc.message)
