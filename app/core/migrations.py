"""Run Alembic migrations from code (CLI, ``make run``, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.core.config import PROJECT_DIR, get_settings


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(PROJECT_DIR / "alembic.ini"))
    cfg.attributes["database_url"] = database_url or get_settings().sqlalchemy_url
    return cfg


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    url = database_url or get_settings().sqlalchemy_url
    if url.startswith("sqlite"):
        get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def pending(database_url: str | None = None) -> bool:
    """Whether the database lacks migrations (an empty ``DATA_DIR`` included)."""
    from app.core.database import get_engine

    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    with get_engine().connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) != heads
