"""The mail settings, a part of ``app.core.config.Settings`` (one object; this module keeps
``config`` short): the SMTP server, the sender, the base of links, and the pace of "your
photos are here". Every variable is documented in docs/OPERATIONS.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings


class MailSettings(BaseSettings):
    data_dir: Path

    # Mail (app/mail): SMTP_URL is smtp://user:pass@host:587 (STARTTLS, required unless
    # ?starttls=false for a relay on this machine) or smtps://user:pass@host:465 (implicit TLS).
    # Empty: nothing is sent; each message is logged and written to DATA_DIR/mail (.eml).
    smtp_url: str = Field(default="", pattern=r"^((smtps?)://.+)?$")
    # A PEM file of the certificate authorities the SMTP server's certificate is checked
    # against, instead of the system's (a private relay).
    smtp_ca_file: Path | None = None
    smtp_timeout: float = Field(default=15.0, gt=0, le=300)  # seconds, per SMTP command
    mail_from: str = ""  # empty: Event Photos <no-reply@the host of PUBLIC_URL>
    # The base of every link in a mail (https://photos.example.org); required with SMTP_URL.
    public_url: str = Field(default="", pattern=r"^(https?://[^/?#\s]+(/[^?#\s]*)?)?$")
    # "Your photos are here": sent once an event's new matches of a guest have been quiet for
    # NOTIFY_QUIET_SECONDS, and at most once per NOTIFY_MIN_INTERVAL_SECONDS per guest and event.
    notify_quiet_seconds: int = Field(default=300, ge=0, le=7 * 24 * 3600)
    notify_min_interval_seconds: int = Field(default=4 * 3600, ge=0, le=30 * 24 * 3600)
    # Guests of one event handled per committed step when their notifications are written.
    notify_batch_size: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _require_public_url_with_mail(self) -> MailSettings:
        if self.smtp_url and not self.public_url:
            raise ValueError(
                "SMTP_URL needs PUBLIC_URL, the address guests open the service at (e.g. "
                "https://photos.example.org): every link in a mail starts with it."
            )
        return self

    @property
    def mail_dir(self) -> Path:
        """Where messages go when no SMTP_URL is set (one .eml file each)."""
        return self.data_dir / "mail"

    @property
    def site_url(self) -> str:
        """The base of links in mails: PUBLIC_URL, else this machine's default address."""
        return (self.public_url or "http://127.0.0.1:8000").rstrip("/")
