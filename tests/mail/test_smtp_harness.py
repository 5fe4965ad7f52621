"""The SMTP harness (``tools.harness.smtp``) behaves as a real mail server would, checked with the
standard library's ``smtplib`` as the client: TLS and AUTH are enforced, accepted messages land
in its maildir in arrival order, refusals come back with their codes, and the server can go
down and come back on the same port."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.harness.smtp import SmtpServer, running_smtp
from tools.mailbox import link_with, links, text_body, to_address

SENDER = "events@example.org"
GUEST = "guest@example.org"


def _message(subject: str, to: str = GUEST) -> str:
    return (
        f"From: {SENDER}\r\nTo: Guest <{to}>\r\nSubject: {subject}\r\n\r\n"
        "Your photos: https://photos.test/e/42?t=abc.\r\nHelp: https://photos.test/help\r\n"
    )


def _send(server: SmtpServer, subject: str) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        client.login("mailer", "s3cret-pass")
        client.sendmail(SENDER, [GUEST], _message(subject))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SmtpServer]:
    with running_smtp(tmp_path) as smtp:
        yield smtp


def test_starttls_and_auth_deliver_a_message_with_its_headers_and_envelope(server: SmtpServer) -> None:
    _send(server, "Your photos are ready")

    [msg] = server.wait_for(1, timeout=5)
    assert msg["Subject"] == "Your photos are ready"
    assert to_address(msg) == GUEST
    assert links(msg) == ["https://photos.test/e/42?t=abc", "https://photos.test/help"]
    assert link_with(msg, "/e/42") == "https://photos.test/e/42?t=abc"
    assert "Your photos:" in text_body(msg)
    assert server.envelopes() == [{"mail_from": SENDER, "rcpt_tos": [GUEST]}]
    assert server.url == f"smtp://mailer:s3cret-pass@127.0.0.1:{server.port}"


def test_without_starttls_auth_and_mail_are_refused(server: SmtpServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AG1haWxlcgBzM2NyZXQtcGFzcw==")[0] == 530
        assert client.mail(SENDER)[0] == 530
    assert server.messages() == []


def test_a_wrong_password_is_refused(server: SmtpServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.starttls(context=ssl.create_default_context(cafile=server.ca_file))
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("mailer", "wrong")
    assert refused.value.smtp_code == 535


def test_implicit_tls_delivers_over_smtps(tmp_path: Path) -> None:
    with running_smtp(tmp_path, tls="implicit") as server:
        context = ssl.create_default_context(cafile=server.ca_file)
        with smtplib.SMTP_SSL("localhost", server.port, context=context, timeout=5) as client:
            client.login("mailer", "s3cret-pass")
            client.sendmail(SENDER, [GUEST], _message("Over SMTPS"))
        assert [m["Subject"] for m in server.wait_for(1, timeout=5)] == ["Over SMTPS"]
        assert server.url == f"smtps://mailer:s3cret-pass@127.0.0.1:{server.port}"


def test_a_refusal_is_answered_with_its_code_and_nothing_is_stored_until_cleared(server: SmtpServer) -> None:
    server.refuse("451 4.3.0 Try again later")
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)) as refused:
        _send(server, "Refused")
    error = refused.value
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
    else:
        assert isinstance(error, smtplib.SMTPDataError)
        codes = [error.smtp_code]
    assert codes == [451]
    assert server.messages() == []

    server.refuse(None)
    _send(server, "Accepted")
    assert [m["Subject"] for m in server.wait_for(1, timeout=5)] == ["Accepted"]


def test_a_refusal_at_data_comes_after_the_recipient_is_accepted(server: SmtpServer) -> None:
    server.refuse("550 5.1.1 No such user", at="DATA")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(server, "Refused at DATA")
    assert refused.value.smtp_code == 550
    assert server.messages() == []


def test_a_stopped_server_refuses_connections_and_comes_back_on_the_same_port(server: SmtpServer) -> None:
    _send(server, "Before")
    port = server.port

    server.stop()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(server.host, port, timeout=5)

    server.start()
    _send(server, "After")
    assert server.port == port
    assert [m["Subject"] for m in server.wait_for(2, timeout=5)] == ["Before", "After"]
    assert sorted(p.name for p in server.maildir.glob("*.eml")) == ["000001.eml", "000002.eml"]


def test_wait_for_says_how_many_messages_came(server: SmtpServer) -> None:
    _send(server, "Only one")
    with pytest.raises(AssertionError, match="expected 2 message"):
        server.wait_for(2, timeout=0.2)


def test_a_plain_server_without_credentials_delivers_without_tls(tmp_path: Path) -> None:
    with running_smtp(tmp_path, tls="none", user=None, password=None) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.sendmail(SENDER, [GUEST], _message("Plain"))
        assert [m["Subject"] for m in server.wait_for(1, timeout=5)] == ["Plain"]
        assert server.url == f"smtp://127.0.0.1:{server.port}?starttls=false"
