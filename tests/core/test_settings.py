"""Settings: the secret key rules."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings, _persisted_secret


def test_production_refuses_to_start_without_a_real_secret_key() -> None:
    for bad in ["", "changeme", "short"]:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(environment="production", secret_key=bad)
    assert Settings(environment="production", secret_key="k" * 40).signing_key() == "k" * 40


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
