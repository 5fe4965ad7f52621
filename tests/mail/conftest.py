"""Helpers of the mail tests (the ``smtp`` fixture, a real SMTP server the service's settings
point at, is in tests/conftest.py: browser and security tests use it too)."""

from __future__ import annotations

from email.message import EmailMessage

from tests.conftest import MAIL_PUBLIC_URL
from tools.harness.smtp import SmtpServer
from tools.mailbox import links

#: The base of every link in the mails of the tests (PUBLIC_URL).
PUBLIC_URL = MAIL_PUBLIC_URL


def sent_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    """The messages the server took for ``address``, oldest first."""
    return [m for m in server.messages() if address in str(m["To"])]


def latest_link(server: SmtpServer, address: str, fragment: str) -> str:
    """The link containing ``fragment`` of the latest message to ``address`` that has one
    (messages of different kinds are sent in their kinds' order, not the order asked)."""
    for message in reversed(sent_to(server, address)):
        found = [link for link in links(message) if fragment in link]
        if found:
            return found[0]
    raise AssertionError(f"no message to {address} has a link with {fragment!r}")
