"""The privacy policy guests accept at registration (``/privacy``, ``GET /api/privacy``), and
its version, recorded with each guest's consent.

The policy is a Jinja template per language (``app/accounts/templates/policy.<language>.html``)
that states what this server's settings do: the face provider, whether selfie images are kept,
the retention, whether mail leaves the server, where files are stored, and the controller and
contact the operator names (``PRIVACY_CONTROLLER``, ``PRIVACY_CONTACT``). Change a template's
wording, change the version.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.core.config import Settings, get_settings
from app.core.i18n import supported

POLICY_VERSION = "2026-12-06.2"
TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class PolicyFacts:
    """What the policy says of this server, from its settings."""

    controller: str
    contact: str
    azure_host: str  # empty: the local face engine, on this server
    keep_selfie_image: bool
    retention_days: int
    mail: bool  # SMTP_URL set: mail leaves the server
    bucket_host: str  # empty: files on this server's disk


def facts(settings: Settings | None = None) -> PolicyFacts:
    settings = settings or get_settings()
    bucket = ""
    if settings.storage_is_s3:
        bucket = urlsplit(settings.s3_endpoint_url).hostname or f"Amazon S3 ({settings.aws_region})"
    azure = settings.face_provider == "azure"
    return PolicyFacts(
        controller=settings.privacy_controller.strip(),
        contact=settings.privacy_contact.strip(),
        azure_host=(urlsplit(settings.azure_face_endpoint).hostname or "") if azure else "",
        keep_selfie_image=settings.selfie_keep_image,
        retention_days=settings.event_retention_days,
        mail=bool(settings.smtp_url),
        bucket_host=bucket,
    )


def policy_html(*, language: str) -> str:
    """The policy in ``language`` (French when the service does not speak it), as HTML."""
    template = _environment.get_template(f"policy.{supported(language)}.html")
    return template.render(asdict(facts()))


def policy_text(*, language: str) -> str:
    """The same policy as plain text: a line per paragraph, item or heading."""
    page = re.sub(r"<li[^>]*>", "- ", policy_html(language=language))
    page = re.sub(r"</(p|li|h\d|ul)>", "\n", page)
    lines = (" ".join(html.unescape(re.sub(r"<[^>]+>", "", line)).split()) for line in page.splitlines())
    return "\n".join(line for line in lines if line)
