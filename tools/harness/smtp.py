"""A real SMTP server for a test or a benchmark: the test side of the SMTP harness.

This module owns the life of one ``tools.harness.smtp_server`` process: its certificates (a
trustme CA and a server certificate for 127.0.0.1 and localhost), its free loopback port, the
start-up wait for its ``READY`` line, stopping and restarting it on the same port, and reading
what it received. ``running_smtp(workdir)`` yields an ``SmtpServer``; everything it writes is
in ``workdir``: ``ca.pem`` (what a client trusts), ``server-cert.pem`` and ``server-key.pem``,
``maildir/`` (the messages), ``smtp-control`` (refusals) and ``smtp-server.log`` (its stderr).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import trustme

from tools.harness.server import free_port
from tools.paths import ROOT

TlsMode = Literal["starttls", "implicit", "none"]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_BYTES = 4000
_REPLY = re.compile(r"^(?:(?:RCPT|DATA) )?[45]\d\d [^\r\n]*$")


class SmtpServer:
    """One SMTP server process and its maildir; ``stop()`` and ``start()`` keep port and files."""

    def __init__(
        self, workdir: Path, *, port: int, tls: TlsMode, user: str | None, password: str | None
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.host = "127.0.0.1"
        self.port = port
        self.tls: TlsMode = tls
        self.ca_file = workdir / "ca.pem"
        self.cert_file = workdir / "server-cert.pem"
        self.key_file = workdir / "server-key.pem"
        self.maildir = workdir / "maildir"
        self.control_file = workdir / "smtp-control"
        self.log_file = workdir / "smtp-server.log"
        self.user = user
        self.password = password
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server as an ``smtp://`` / ``smtps://`` URL, with the credentials if it has any."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        auth = ""
        if self.user is not None and self.password is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        query = "?starttls=false" if self.tls == "none" else ""
        return f"{scheme}://{auth}{self.host}:{self.port}{query}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _files(self, suffix: str) -> list[Path]:
        """The complete messages' files with ``suffix``, in arrival order."""
        numbers = sorted(int(p.stem) for p in self.maildir.glob("*.eml") if p.stem.isdigit())
        return [self.maildir / f"{n:06d}{suffix}" for n in numbers]

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, in arrival order."""
        parser = BytesParser(_class=EmailMessage, policy=default)
        return [parser.parsebytes(path.read_bytes()) for path in self._files(".eml")]

    def envelopes(self) -> list[dict[str, Any]]:
        """The envelope (``mail_from``, ``rcpt_tos``) of each message, in the order of ``messages()``."""
        return [json.loads(path.read_text(encoding="utf-8")) for path in self._files(".json")]

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        """All messages once at least ``count`` have arrived; AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            received = self.messages()
            if len(received) >= count:
                return received
            if time.monotonic() > deadline:
                subjects = [str(m["Subject"]) for m in received]
                raise AssertionError(
                    f"expected {count} message(s) within {timeout:g} s, {len(received)} came: {subjects}"
                )
            time.sleep(0.05)

    def refuse(self, line: str | None, *, at: Literal["RCPT", "DATA"] | None = None) -> None:
        """Answer RCPT and DATA (or only the stage ``at``) with ``line``, e.g. ``451 4.3.0 Try
        again later``, until ``refuse(None)``; takes effect from the next command."""
        if line is None:
            self.control_file.unlink(missing_ok=True)
            return
        reply = f"{at} {line}" if at else line
        if not _REPLY.match(reply):
            raise ValueError(f"not an SMTP refusal (4xx or 5xx and a text): {line!r}")
        tmp = self.control_file.with_name(f".{self.control_file.name}.tmp")
        tmp.write_text(reply + "\n", encoding="utf-8")
        tmp.replace(self.control_file)

    def start(self) -> None:
        """Start the server process on ``port`` and wait for it to listen."""
        if self.running:
            raise RuntimeError(f"the SMTP server on port {self.port} is already running")
        command = [
            sys.executable,
            "-m",
            "tools.harness.smtp_server",
            f"--port={self.port}",
            f"--maildir={self.maildir}",
            f"--tls={self.tls}",
            f"--control={self.control_file}",
        ]
        if self.tls != "none":
            command += [f"--cert={self.cert_file}", f"--key={self.key_file}"]
        if self.user is not None:
            command += [f"--user={self.user}", f"--password={self.password}"]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - this interpreter and our arguments
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        try:
            self._wait_ready(self._proc)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        out = b""
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"the SMTP server did not print READY within {START_TIMEOUT:.0f} s; stderr:\n"
                    + self._log_tail()
                )
            readable, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
            if readable:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    proc.wait(timeout=STOP_TIMEOUT)
                    raise RuntimeError(
                        f"the SMTP server exited with {proc.returncode} during start-up; stderr:\n"
                        + self._log_tail()
                    )
                out += chunk
        line = out.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if line != f"READY {self.port}":
            raise RuntimeError(f"the SMTP server said {line!r}, not READY {self.port}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_bytes()[-LOG_TAIL_BYTES:].decode("utf-8", "replace") or "(empty)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after 10 s); nothing if it is stopped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


def _write_certificates(server: SmtpServer) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(server.ca_file))
    server.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(server.key_file))
    server.key_file.chmod(0o600)


@contextmanager
def running_smtp(
    workdir: Path,
    *,
    tls: TlsMode = "starttls",
    user: str | None = "mailer",
    password: str | None = "s3cret-pass",  # noqa: S107 - a throwaway test server's login
) -> Iterator[SmtpServer]:
    """Yield a started SmtpServer keeping its files in ``workdir``; it is stopped after."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = SmtpServer(workdir, port=free_port(), tls=tls, user=user, password=password)
    server.maildir.mkdir(exist_ok=True)
    _write_certificates(server)
    try:
        server.start()
        yield server
    finally:
        server.stop()
