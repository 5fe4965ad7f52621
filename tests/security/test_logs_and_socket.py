"""A request path cannot forge a line or a field of the access log (quotes, backslashes and
control characters are escaped), and each Gunicorn server has its own control socket in its
RUN_DIR instead of the ``~/.gunicorn/gunicorn.ctl`` every server of the user shared (and the
first one to stop deleted)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from tools.harness.server import running_server

pytestmark = pytest.mark.once

# time, client, "METHOD target", status, duration: the target's quotes are escaped.
ACCESS_LINE = re.compile(r'(\S+) (\S+) "([A-Z]+) ((?:[^"\\]|\\.)*)" (\d{3}) ([\d.]+)ms')


def _access_lines(client: TestClient, caplog: pytest.LogCaptureFixture, raw_path: str) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.get(quote(raw_path, safe="/"))
    return [r.getMessage() for r in caplog.records if r.name == "app.access"]


def _unescape(target: str) -> str:
    return target.encode("latin-1", "backslashreplace").decode("unicode_escape")


@pytest.mark.parametrize(
    "raw_path",
    [
        '/x" 200 0.1ms\n2030-01-01T00:00:00+0000 10.0.0.1 "GET /api/admin',  # a forged second line
        '/x" 200 0.1ms 10.0.0.1 "GET /api/admin',  # a forged field on the same line
        '/x\\" 200 1ms',  # a backslash that would un-escape our escape
        "/x\x1b[31mred\r\u2028\u0085end",  # terminal escapes, carriage return, Unicode line breaks
    ],
    ids=["newline", "quote", "backslash", "control"],
)
def test_a_request_path_cannot_forge_the_access_log(
    client: TestClient, caplog: pytest.LogCaptureFixture, raw_path: str
) -> None:
    lines = _access_lines(client, caplog, raw_path)
    assert len(lines) == 1
    line = lines[0]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    parsed = ACCESS_LINE.fullmatch(line)
    assert parsed is not None, line
    assert parsed.group(3) == "GET" and parsed.group(5) == "404"
    assert _unescape(parsed.group(4)) == raw_path  # the whole path is in its field, nothing else


def test_an_ordinary_path_is_logged_as_it_is(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    line = _access_lines(client, caplog, "/api/health-check")[0]
    assert '"GET /api/health-check" 200 ' in line


def _run_dir(env: dict[str, str]) -> Path:
    return Settings(_env_file=None, data_dir=Path(env["DATA_DIR"])).node_dir


def _workers(socket_path: Path) -> int:
    gunicornc = str(Path(sys.executable).with_name("gunicornc"))
    done = subprocess.run(
        [gunicornc, "-s", str(socket_path), "-c", "show workers", "-j"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout)
    return len(answer["workers"])


@pytest.mark.slow
def test_each_server_has_its_own_control_socket_that_another_server_stopping_leaves_alone(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "EMBEDDED_FACE_WORKERS": "false", "DATABASE_URL": ""}
    saved = os.environ.pop("XDG_RUNTIME_DIR", None)
    try:
        with running_server(workers=1, env={**env, "DATA_DIR": str(tmp_path / "a")}) as (_, a_env):
            a_sockets = list(_run_dir(a_env).glob("gunicorn-*.ctl"))
            assert len(a_sockets) == 1
            with running_server(workers=2, env={**env, "DATA_DIR": str(tmp_path / "b")}) as (_, b_env):
                b_sockets = list(_run_dir(b_env).glob("gunicorn-*.ctl"))
                assert len(b_sockets) == 1 and b_sockets != a_sockets
                assert (_workers(a_sockets[0]), _workers(b_sockets[0])) == (1, 2)
            assert not b_sockets[0].exists()  # B removed its own when it stopped
            assert _workers(a_sockets[0]) == 1  # and A's still answers
        assert not (home / ".gunicorn").exists()
    finally:
        if saved is not None:
            os.environ["XDG_RUNTIME_DIR"] = saved
