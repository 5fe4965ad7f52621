"""Gunicorn's settings: validated like the application's, under the variable names and defaults
operators already use, and the start-up summary the master prints once (``app.ops.startup``)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.server_config import ServerSettings, explain
from app.ops.startup import WORKER_CLASS, embedded_face_workers, startup_summary

ROOT = Path(__file__).resolve().parents[2]
SERVER_VARIABLES = [
    "HOST",
    "PORT",
    "WEB_CONCURRENCY",
    "FORWARDED_ALLOW_IPS",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_BACKLOG",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "GUNICORN_LOG_DIR",
    "ACCESS_LOG",
    "LOG_LEVEL",
    "NOFILE_LIMIT",
]


@pytest.fixture
def server_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any of the server's variables (``make`` exports HOST and PORT)."""
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _server() -> ServerSettings:
    return ServerSettings(_env_file=None)


def _settings(tmp_path: Path, **values: object) -> Settings:
    defaults: dict[str, object] = {
        "data_dir": tmp_path,
        "database_url": "",
        "storage_url": "",
        "redis_url": "",
        "ops_token": "",
        "throttles_enabled": True,
    }
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[arg-type]


def _summary(tmp_path: Path, *, redis_answers: bool = True, **values: object) -> str:
    settings = _settings(tmp_path, **values)
    return startup_summary(
        settings=settings,
        server=_server(),
        face_workers=embedded_face_workers(settings),
        storage_description="local files in /srv/media",
        redis_answers=redis_answers,
    )


def test_every_variable_keeps_the_default_gunicorn_config_gave_it(server_env: pytest.MonkeyPatch) -> None:
    server = _server()
    assert server.bind == ["127.0.0.1:8000"]
    assert server.web_concurrency == 8 and server.forwarded_allow_ips == ""
    assert server.gunicorn_timeout == 60 and server.gunicorn_graceful_timeout == 30
    assert server.gunicorn_keepalive == 5 and server.gunicorn_backlog == 2048
    assert (server.gunicorn_max_requests, server.gunicorn_max_requests_jitter) == (10_000, 1000)
    assert server.nofile_limit == 65_536
    assert (server.access_log_file, server.error_log_file, server.log_level) == ("-", "-", "info")


def test_every_variable_is_read_under_its_old_name(server_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {
        "HOST": "10.1.2.3",
        "PORT": "9000",
        "WEB_CONCURRENCY": "3",
        "FORWARDED_ALLOW_IPS": "10.0.0.5, 192.168.0.0/16",
        "GUNICORN_TIMEOUT": "90",
        "GUNICORN_GRACEFUL_TIMEOUT": "20",
        "GUNICORN_KEEPALIVE": "2",
        "GUNICORN_BACKLOG": "512",
        "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_MAX_REQUESTS_JITTER": "10",
        "GUNICORN_LOG_DIR": str(tmp_path / "logs"),
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
        "NOFILE_LIMIT": "4096",
    }
    for name, value in values.items():
        server_env.setenv(name, value)
    server = _server()
    assert server.bind == ["10.1.2.3:9000"] and server.web_concurrency == 3
    assert server.forwarded_allow_ips == "10.0.0.5, 192.168.0.0/16"
    assert server.gunicorn_timeout == 90 and server.gunicorn_graceful_timeout == 20
    assert server.gunicorn_keepalive == 2 and server.gunicorn_backlog == 512
    assert (server.gunicorn_max_requests, server.gunicorn_max_requests_jitter) == (0, 10)
    assert server.log_level == "warning" and server.nofile_limit == 4096
    # A log folder takes both logs, whatever ACCESS_LOG says (as before).
    assert server.access_log_file == str(tmp_path / "logs" / "access.log")
    assert server.error_log_file == str(tmp_path / "logs" / "error.log")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("WEB_CONCURRENCY", "0"),
        ("GUNICORN_TIMEOUT", "-1"),
        ("GUNICORN_BACKLOG", "lots"),
        ("HOST", "my host"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1/8"),
        ("FORWARDED_ALLOW_IPS", "proxy.local"),
        ("ACCESS_LOG", "perhaps"),
        ("LOG_LEVEL", "loud"),
        ("NOFILE_LIMIT", "10"),
    ],
)
def test_an_invalid_value_fails_fast_naming_the_variable(
    server_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    server_env.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        _server()
    assert f"\n  {name}=" in explain(caught.value)


def test_an_empty_access_log_or_log_dir_means_off_as_before(server_env: pytest.MonkeyPatch) -> None:
    server_env.setenv("ACCESS_LOG", "")
    server_env.setenv("GUNICORN_LOG_DIR", " ")
    server = _server()
    assert server.gunicorn_log_dir is None
    assert (server.access_log_file, server.error_log_file) == (None, "-")


def test_an_ipv6_host_is_bound_in_brackets(server_env: pytest.MonkeyPatch) -> None:
    server_env.setenv("HOST", "::1")
    assert _server().bind == ["[::1]:8000"]


def test_embedded_face_workers_is_read_once_and_validated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACE_WORKERS", "3")
    monkeypatch.setenv("EMBEDDED_FACE_WORKERS", "false")
    assert embedded_face_workers(Settings(_env_file=None)) == 0
    monkeypatch.setenv("EMBEDDED_FACE_WORKERS", "true")
    assert embedded_face_workers(Settings(_env_file=None)) == 3
    monkeypatch.setenv("EMBEDDED_FACE_WORKERS", "maybe")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert "EMBEDDED_FACE_WORKERS='maybe'" in explain(caught.value)
    # Only the settings read it: gunicorn_config.py reads no variable itself.
    config = (ROOT / "gunicorn_config.py").read_text()
    assert "EMBEDDED_FACE_WORKERS" not in config
    assert "environ" not in config and "getenv" not in config


def _gunicorn_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    names = ["bind", "workers", "worker_class", "timeout", "keepalive", "accesslog", "loglevel"]
    code = (
        "import json, gunicorn_config as g\n"
        f"print(json.dumps({{n: getattr(g, n) for n in {names!r}}} | {{'face': g.master.face_workers}}))"
    )
    environ = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    environ |= {"DATA_DIR": str(tmp_path), "DATABASE_URL": "", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def test_gunicorn_config_sets_gunicorns_names_from_the_settings(tmp_path: Path) -> None:
    env = {
        "PORT": "8123",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_TIMEOUT": "90",
        "ACCESS_LOG": "off",
        "LOG_LEVEL": "Debug",
        "EMBEDDED_FACE_WORKERS": "false",
    }
    done = _gunicorn_config(env, tmp_path)
    assert done.returncode == 0, done.stderr
    names = json.loads(done.stdout)
    assert names == {
        "bind": ["127.0.0.1:8123"],
        "workers": 3,
        "worker_class": WORKER_CLASS,
        "timeout": 90,
        "keepalive": 5,
        "accesslog": None,
        "loglevel": "debug",
        "face": 0,
    }


def test_gunicorn_stops_before_starting_naming_every_invalid_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env |= {"DATA_DIR": str(tmp_path), "PORT": "eighty", "EMBEDDED_FACE_WORKERS": "maybe"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    done = subprocess.run(
        [gunicorn, "main:app", "-c", "gunicorn_config.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "PORT='eighty'" in done.stderr and "EMBEDDED_FACE_WORKERS='maybe'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_worker_class_is_importable_under_its_name() -> None:
    module, _, name = WORKER_CLASS.rpartition(".")
    worker = getattr(__import__(module, fromlist=[name]), name)
    assert worker.__name__ == name == "WebWorker"
    assert worker.CONFIG_KWARGS["server_header"] is False


def test_startup_summary_names_the_database_without_its_password(tmp_path: Path) -> None:
    text = _summary(tmp_path, database_url="postgresql://app:s3cret-pw@db.internal:5432/photos")
    assert "postgresql+psycopg2://app:***@db.internal:5432/photos" in text
    assert "s3cret-pw" not in text


def test_startup_summary_gives_bind_workers_face_workers_and_storage(
    server_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server_env.setenv("HOST", "10.1.2.3")
    server_env.setenv("WEB_CONCURRENCY", "4")
    text = _summary(tmp_path, face_workers=2, embedded_face_workers=True)
    lines = text.splitlines()
    assert lines[0] == "configuration:"
    assert "  bind            10.1.2.3:8000" in lines
    assert f"  workers         4 x {WORKER_CLASS}" in lines
    assert "  face workers    2 embedded" in lines
    assert "  storage         local files in /srv/media" in lines
    assert "  sqlite          WAL + busy_timeout: several workers share the file safely" in lines


def test_startup_summary_says_when_face_workers_run_elsewhere(tmp_path: Path) -> None:
    assert "external (python -m app.worker)" in _summary(tmp_path, embedded_face_workers=False)


def test_startup_summary_says_how_idle_face_workers_wake_up(tmp_path: Path) -> None:
    pooled = "postgresql://app@127.0.0.1:6432/photos"
    assert "job wake-ups    local sockets" in _summary(tmp_path)
    assert "LISTEN/NOTIFY" in _summary(tmp_path, database_url="postgresql://app@db/photos")
    behind = _summary(tmp_path, database_url=pooled, database_pooler="pgbouncer", job_idle_poll_seconds=2)
    assert "polling every 2s (set DATABASE_LISTEN_URL)" in behind
    assert "sqlite " not in behind


def test_startup_summary_says_how_a_bucket_serves_photos(tmp_path: Path) -> None:
    bucket: dict[str, Any] = {"storage_url": "s3://photos", "secret_key": secrets.token_urlsafe(32)}
    assert "/srv/media, presigned URLs" in _summary(tmp_path, **bucket)
    assert "/srv/media, streamed" in _summary(tmp_path, storage_presigned_urls=False, **bucket)
    assert "storage         local files in /srv/media\n" in _summary(tmp_path)


def test_startup_summary_says_where_throttles_count(tmp_path: Path) -> None:
    assert "in memory, per worker (set REDIS_URL to share)" in _summary(tmp_path)
    assert "Redis (shared by all workers)" in _summary(tmp_path, redis_url="redis://127.0.0.1:6379/0")
    assert "throttles       off" in _summary(tmp_path, throttles_enabled=False)


def test_startup_summary_says_when_the_throttles_redis_does_not_answer(tmp_path: Path) -> None:
    summary = _summary(tmp_path, redis_answers=False, redis_url="redis://127.0.0.1:6379/0")
    assert "Redis configured but NOT answering" in summary


def test_startup_summary_never_shows_the_ops_token(tmp_path: Path) -> None:
    generated = _summary(tmp_path)
    assert f"protected by the token in {tmp_path / 'ops_token'} (generated; or set OPS_TOKEN)" in generated
    given = _summary(tmp_path, ops_token="t0ken-of-the-operators")
    assert "protected by OPS_TOKEN" in given and "t0ken-of-the-operators" not in given


def test_startup_summary_gives_logs_proxy_and_slow_client_limits(
    server_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server_env.setenv("ACCESS_LOG", "false")
    server_env.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5")
    server_env.setenv("GUNICORN_KEEPALIVE", "7")
    text = _summary(tmp_path, request_read_timeout=20, request_min_rate=1000)
    assert "logs            access off, errors -" in text
    assert "X-Forwarded-For trusted from: 10.0.0.5 (FORWARDED_ALLOW_IPS)" in text
    assert "within 20s (+1s per 1000 bytes received), then 408; keep-alive 7s" in text


def test_startup_summary_ends_with_what_the_start_up_checks_found(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    checks = ["open files limit raised from 1024 to 65536", "database connections: ... = 83 at most"]
    text = startup_summary(
        settings=settings,
        server=_server(),
        face_workers=0,
        storage_description="local files",
        heartbeat_dir="/run/heartbeats",
        check_lines=checks,
    )
    assert text.splitlines()[-2:] == [f"  {line}" for line in checks]
    assert "worker_tmp_dir  /run/heartbeats" in text


def test_the_master_does_not_load_prometheus_client_before_its_multiprocess_folder_is_set() -> None:
    # prometheus-client picks in-process or multiprocess values when it is first imported: a
    # master that imported it too early would leave /api/stats without any worker's figures.
    code = "import sys, app.ops.startup; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
