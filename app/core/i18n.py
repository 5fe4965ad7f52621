"""The Babel catalogs every text for people goes through: the pages' and the mails'.

The catalogs are the ``.po`` files under ``app/locales`` (``make messages`` extracts and updates
them with pybabel). They are compiled in memory when first used, so neither a build step nor
compiled ``.mo`` files exist. French is the default language. A request gets the one of its
``lang`` cookie (the switch on every page), else of ``Accept-Language``; a mail, its account's
(``users.language``).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request

LOCALES_DIR = Path(__file__).resolve().parents[1] / "locales"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}
LANG_COOKIE = "lang"


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where shown."""
    return message


def supported(language: str | None) -> str:
    """``language`` if the service speaks it, else the default."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@lru_cache
def translations(language: str) -> Translations:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=Locale.parse(language))
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def _accepted(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def language_for(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    for tag in _accepted(request.headers.get("accept-language", "")):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE
