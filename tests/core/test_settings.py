"""Settings: the secret key rules."""

from __future__ import annotations

import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings, _persisted_secret


def test_production_refuses_to_start_without_a_real_secret_key() -> None:
    for bad in ["", "changeme", "short"]:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(environment="production", secret_key=bad)
    strong = secrets.token_urlsafe(32)
    assert Settings(environment="production", secret_key=strong).signing_key() == strong


def test_development_generates_one_secret_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(environment="development", secret_key="", data_dir=tmp_path)
    first = settings.signing_key()
    assert len(first) >= 32
    assert Settings(environment="development", secret_key="", data_dir=tmp_path).signing_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_workers_starting_at_once_all_get_the_same_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    with ProcessPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(_persisted_secret, [path] * 16))
    assert len(keys) == 1
    assert not list(tmp_path.glob(".secret_key.*"))


def test_postgres_urls_heroku_style_or_plain_use_psycopg2() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg2://u@h/db"):
        assert Settings(database_url=url).sqlalchemy_url == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize("url", ["s3://", "s3://B/x", "file:///tmp/x", "http://host/bucket", "s3:/bucket"])
def test_storage_url_is_empty_or_an_s3_bucket(url: str) -> None:
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(storage_url=url)
    assert Settings(storage_url="s3://event-photos/media/2026").storage_is_s3


def test_nodes_on_a_bucket_must_share_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="same random value"):
        Settings(environment="development", storage_url="s3://photos", secret_key="")
    strong = secrets.token_urlsafe(32)
    assert Settings(environment="development", storage_url="s3://photos", secret_key=strong).storage_is_s3


def test_the_run_dir_is_off_the_data_disk_and_each_nodes_own_unless_set(tmp_path: Path) -> None:
    assert tmp_path not in Settings(data_dir=tmp_path).node_dir.parents
    on_bucket = Settings(data_dir=tmp_path, storage_url="s3://photos", node_name="node-b")
    other_node = Settings(data_dir=tmp_path, storage_url="s3://photos", node_name="node-c")
    assert tmp_path not in on_bucket.node_dir.parents and on_bucket.node_dir != other_node.node_dir
    assert Settings(data_dir=tmp_path, run_dir=tmp_path / "mine").node_dir == tmp_path / "mine"


def test_behind_pgbouncer_workers_listen_on_the_direct_url_or_poll() -> None:
    pooled, direct = "postgresql://u@127.0.0.1:6432/db", "postgresql://u@127.0.0.1:5432/db"
    assert Settings(database_url=direct).listen_url == "postgresql+psycopg2://u@127.0.0.1:5432/db"
    behind = Settings(database_url=pooled, database_pooler="pgbouncer")
    assert behind.listen_url is None
    assert (
        Settings(database_url=pooled, database_pooler="pgbouncer", database_listen_url=direct).listen_url
        == "postgresql+psycopg2://u@127.0.0.1:5432/db"
    )
