"""A real SMTP server (aiosmtpd, its own process, STARTTLS with a certificate the test made)
that the service's settings point at, and the mail helpers of the mail tests."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.core.config import get_settings
from tools.harness.smtp import SmtpServer, running_smtp

PUBLIC_URL = "http://photos.test"


@pytest.fixture
def smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with running_smtp(tmp_path / "smtp") as server:
        settings = get_settings()
        monkeypatch.setattr(settings, "smtp_url", server.url)
        monkeypatch.setattr(settings, "smtp_ca_file", server.ca_file)
        monkeypatch.setattr(settings, "smtp_timeout", 5.0)
        monkeypatch.setattr(settings, "public_url", PUBLIC_URL)
        yield server


def sent_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    """The messages the server took for ``address``, oldest first."""
    return [m for m in server.messages() if address in str(m["To"])]
