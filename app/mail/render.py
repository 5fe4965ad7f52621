"""A mail's subject and bodies (plain text and HTML) in the recipient's language, from the
templates in ``app/mail/templates`` and the catalogs every text goes through
(``app.core.i18n``). A message never carries a photo or a face: only counts, names and links."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.core.i18n import N_, supported, translations

TEMPLATES = Path(__file__).parent / "templates"
SERVICE_NAME = "Event Photos"

#: The subject of each kind of mail (``%(event)s``: the event's name).
SUBJECTS = {
    "verify": N_("Confirm your email address"),
    "reset": N_("Reset your password"),
    "signin": N_("Your sign-in link"),
    "photos": N_("New photos of you from %(event)s"),
}

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind: str, *, language: str, context: dict[str, Any]) -> Rendered:
    """The mail of ``kind`` in ``language`` (French when the service does not speak it)."""
    catalog = translations(supported(language))

    def gettext(message: str, **values: Any) -> str:
        text = catalog.gettext(message)
        return text % values if values else text

    def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
        return catalog.ngettext(singular, plural, num) % {"num": num, **values}

    values = {**context, "service": SERVICE_NAME, "_": gettext, "gettext": gettext, "ngettext": ngettext}
    subject = gettext(SUBJECTS[kind], event=context.get("event_name", ""))
    text = _environment.get_template(f"{kind}.txt").render(values)
    html = _environment.get_template(f"{kind}.html").render({**values, "subject": subject})
    return Rendered(subject=subject, text=text, html=html)
