"""What the page routes share: the CSRF-checked form, its fields validated by a Pydantic
model (``parsed``), redirects, and safe ``next`` targets."""

from __future__ import annotations

from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request, status
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse

from app.accounts import sessions
from app.accounts.models import User


async def verified_form(request: Request) -> FormData:
    """The posted form, once its CSRF token (field or header) is checked: 403 otherwise."""
    form = await request.form(max_files=0, max_fields=20)
    submitted = form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
    sessions.check_csrf(request, submitted if isinstance(submitted, str) else None)
    return form


Form = Annotated[FormData, Depends(verified_form)]
#: For routes whose form carries nothing but the CSRF token.
CSRF = [Depends(verified_form)]


Model = TypeVar("Model", bound=BaseModel)


def parsed(model: type[Model], form: FormData) -> Model:
    """The form's text fields named like ``model``'s, validated by it (``ValidationError``)."""
    values = {name: form[name] for name in model.model_fields if isinstance(form.get(name), str)}
    return model.model_validate(values)


def field(form: FormData, name: str, limit: int = 320) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path of this site: never another site (``//evil``, ``/\\evil``, a scheme), nor a
    control character a browser would drop (a tab in ``/<tab>/evil``)."""
    if (
        value
        and value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and not any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        return value
    return default


def to_login(request: Request) -> RedirectResponse:
    """The log-in page, coming back here after."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other(f"/login?next={quote(target, safe='')}")


def home_for(user: User) -> str:
    return "/organizer" if user.is_organizer else "/photos"


def first_problem(exc: ValidationError) -> str:
    """The first field in error, as the API's validation errors name it."""
    errors = exc.errors()
    return str(errors[0]["loc"][-1]) if errors and errors[0]["loc"] else ""
