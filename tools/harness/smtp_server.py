"""A real SMTP server (aiosmtpd) run as its own process by ``tools.harness.smtp``.

This module owns the server side of the SMTP harness: the command line, the listener on
127.0.0.1 (plain, STARTTLS required, or implicit TLS), the AUTH PLAIN/LOGIN check, the
maildir it delivers into, and the control file that makes it refuse RCPT and DATA.

Each accepted message becomes ``NNNNNN.eml`` in the maildir (a sequence number in arrival
order, continuing from the files already there), with ``NNNNNN.json`` holding its envelope
(``mail_from``, ``rcpt_tos``). The sidecar is in place before the ``.eml`` is renamed into
place, so a reader that sees a message also sees its envelope.

The control file, read before each RCPT and each DATA, holds a reply line such as
``451 4.3.0 Try again later``; while it is non-empty that line is the answer instead of
acceptance. A line may start with ``RCPT `` or ``DATA `` to refuse only at that stage.

Run ``python -m tools.harness.smtp_server --port P --maildir DIR --tls {starttls,implicit,none}
[--cert CERT.pem --key KEY.pem] [--user U --password PW] --control FILE``. It prints
``READY <port>`` on stdout once listening and exits with 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import signal
import ssl
import warnings
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

STAGES = ("RCPT", "DATA")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class MaildirHandler:
    """aiosmtpd handler: refuse as the control file says, else store each message.

    aiosmtpd passes its hooks' arguments by position, so the unused ones are named with a ``_``."""

    def __init__(self, maildir: Path, control: Path) -> None:
        self.maildir = maildir
        self.control = control
        stored = [p for p in maildir.iterdir() if p.suffix in {".eml", ".json"}]
        numbers = [int(p.stem) for p in stored if p.stem.isdigit()]
        self.next_number = max(numbers, default=0) + 1

    def refusal(self, stage: str) -> str | None:
        """The reply line the control file asks for at ``stage`` (RCPT or DATA), if any."""
        try:
            lines = self.control.read_text(encoding="utf-8").strip().splitlines()
        except FileNotFoundError:
            return None
        if not lines:
            return None
        reply = lines[0].strip()
        head, _, rest = reply.partition(" ")
        if head.upper() in STAGES:
            return rest.strip() if head.upper() == stage else None
        return reply

    async def handle_RCPT(
        self, _server: SMTP, _session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refused = self.refusal("RCPT")
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        refused = self.refusal("DATA")
        if refused:
            return refused
        content = envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        name = f"{self.next_number:06d}"
        self.next_number += 1
        sidecar = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        _write_atomically(self.maildir / f"{name}.json", json.dumps(sidecar).encode("utf-8"))
        _write_atomically(self.maildir / f"{name}.eml", data)
        return "250 OK"


class Credentials:
    """aiosmtpd authenticator accepting one user and password, by PLAIN or LOGIN."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(
        self, _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            mechanism in {"PLAIN", "LOGIN"}
            and isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, self.user)
            and hmac.compare_digest(auth_data.password, self.password)
        )
        return AuthResult(success=ok, handled=False)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.harness.smtp_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--tls", choices=["starttls", "implicit", "none"], required=True)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.tls != "none" and not (args.cert and args.key):
        parser.error(f"--tls {args.tls} needs --cert and --key")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def _smtp_options(args: argparse.Namespace, tls: ssl.SSLContext | None) -> dict[str, Any]:
    """Keyword arguments of aiosmtpd's SMTP for the chosen TLS mode and credentials."""
    options: dict[str, Any] = {
        # The default, socket.getfqdn(), may ask a DNS server.
        "hostname": "localhost",
        "enable_SMTPUTF8": True,
    }
    if args.tls == "starttls":
        options.update(tls_context=tls, require_starttls=True)
    if args.user is None:
        # No AUTH offered at all: a client with credentials fails loudly instead of skipping them.
        options["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
    else:
        options.update(
            authenticator=Credentials(args.user, args.password),
            auth_required=True,
            # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the whole connection is.
            auth_require_tls=args.tls == "starttls",
        )
    return options


async def serve(args: argparse.Namespace) -> None:
    """Listen until SIGTERM or SIGINT; print ``READY <port>`` once listening."""
    tls: ssl.SSLContext | None = None
    if args.tls != "none":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    args.maildir.mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(args.maildir, args.control)
    options = _smtp_options(args, tls)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await loop.create_server(
        lambda: SMTP(handler, loop=loop, **options),
        host="127.0.0.1",
        port=args.port,
        ssl=tls if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    await stopping.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    # AUTH without STARTTLS is what an implicit-TLS or a plain test server means to do.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
