"""How a message leaves: SMTP (``SMTP_URL``), or, with no SMTP server configured, a folder
under ``DATA_DIR/mail`` and a line in the log (as Django's console and file backends), so that
a new installation shows what it would send.

A failure is *temporary* (the server is down, slow, refuses for now with a 4xx, or rejects
our credentials: the message waits and is sent later) or *permanent* (a 5xx about this very
message or recipient: retrying cannot help). One SMTP connection per process is reused from
message to message and opened again when the server dropped it.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from app.core.config import Settings

log = logging.getLogger("app.mail")
#: A connection used within this many seconds is used again without a NOOP first.
IDLE_CHECK_SECONDS = 5.0


class DeliveryFailed(Exception):
    """The message was not taken. ``permanent``: never retry it."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:587`` (STARTTLS; ``?starttls=false`` for a plain relay on this
    machine) or ``smtps://user:pass@host:465`` (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://user:password@host:587 or smtps://...:465")
    implicit = parts.scheme == "smtps"
    plain = parse_qs(parts.query).get("starttls", ["true"])[0].lower() in ("false", "0", "no")
    if plain and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("SMTP_URL: starttls=false is allowed only for a relay on this machine")
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        implicit_tls=implicit,
        starttls=not implicit and not plain,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _tls_context(settings: Settings) -> ssl.SSLContext:
    if settings.smtp_ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.smtp_ca_file))
    return ssl.create_default_context()


class SmtpTransport:
    """Sends through one reused connection (a lock: one message at a time per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target = parse_smtp_url(settings.smtp_url)
        self._client: smtplib.SMTP | None = None
        self._used_at = 0.0
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        t, timeout = self.target, self.settings.smtp_timeout
        client: smtplib.SMTP
        if t.implicit_tls:
            client = smtplib.SMTP_SSL(t.host, t.port, timeout=timeout, context=_tls_context(self.settings))
        else:
            client = smtplib.SMTP(t.host, t.port, timeout=timeout)
            if t.starttls:
                client.starttls(context=_tls_context(self.settings))
        if t.username is not None:
            client.login(t.username, t.password or "")
        return client

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """The connection, and whether it is a reused one. One idle for a while is checked
        first (NOOP); one used a moment ago is trusted, and a send that finds it dropped is
        tried once more on a new one (``send``)."""
        if self._client is not None:
            if time.monotonic() - self._used_at < IDLE_CHECK_SECONDS:
                return self._client, True
            try:
                if self._client.noop()[0] == 250:
                    return self._client, True
            except (smtplib.SMTPException, OSError):
                pass
            self.close()
        self._client = self._connect()
        return self._client, False

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def _send(self, message: EmailMessage, to: str) -> None:
        client, reused = self._connection()
        try:
            client.send_message(message, to_addrs=[to])
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            if not reused:
                raise
            self.close()  # the server dropped an idle connection: once more on a new one
            client, _ = self._connection()
            client.send_message(message, to_addrs=[to])
        self._used_at = time.monotonic()

    def send(self, message: EmailMessage, to: str) -> None:
        with self._lock:
            try:
                self._send(message, to)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise DeliveryFailed(_said(code, text), permanent=code >= 500, code=code) from exc
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                self.close()
                code = exc.smtp_code
                raise DeliveryFailed(_said(code, exc.smtp_error), permanent=code >= 500, code=code) from exc
            except (smtplib.SMTPException, OSError) as exc:
                # Down, unreachable, TLS or login refused: nothing about this message; later.
                self.close()
                raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from exc


def _said(code: int, text: bytes | str) -> str:
    words = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"SMTP {code} {words}"


class FolderTransport:
    """No SMTP server: each message is an .eml file in ``DATA_DIR/mail`` and a log line."""

    def __init__(self, settings: Settings) -> None:
        self.folder: Path = settings.mail_dir

    def send(self, message: EmailMessage, to: str) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_")
        path = self.folder / f"{name}.eml"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(bytes(message))
        tmp.replace(path)
        log.info("mail to %s (%s) not sent, no SMTP_URL: written to %s", to, message["Subject"], path)

    def close(self) -> None:
        pass


Transport = SmtpTransport | FolderTransport


_current: tuple[tuple[object, ...], Transport] | None = None


def transport(settings: Settings) -> Transport:
    """This process's transport (a new one when the mail settings changed)."""
    global _current
    key = (settings.smtp_url, settings.smtp_ca_file, settings.smtp_timeout, settings.mail_dir)
    if _current is None or _current[0] != key:
        if _current is not None:
            _current[1].close()
        chosen = SmtpTransport(settings) if settings.smtp_url else FolderTransport(settings)
        _current = (key, chosen)
    return _current[1]
