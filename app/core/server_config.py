"""The Gunicorn server's own settings, read from the environment (and an optional ``.env``)
like ``app.core.config.Settings``: where to listen, how many web workers, their time limits,
recycling and logs. ``gunicorn_config.py`` turns them into Gunicorn's names.

The application's settings (database, storage, faces, ``EMBEDDED_FACE_WORKERS``...) are
``app.core.config.Settings``; nothing is read twice. ``explain`` turns a validation error of
either into one line per variable, named as the operator spells it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values of variables whose names contain these are never echoed in an error.
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Loopback unless told: a server reachable from the network is an operator's decision
    # (HOST=0.0.0.0).
    host: str = Field(default="127.0.0.1", pattern=r"^[0-9A-Za-z.:%_-]+$")
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=8, ge=1, le=512)  # the original plan's 8; docs/PERFORMANCE.md
    # X-Forwarded-For / -Proto are believed only from these addresses (the reverse proxy); by
    # default from none, so a client cannot pick the address the throttles count it under.
    forwarded_allow_ips: str = ""
    # Seconds; 0 switches Gunicorn's worker timeout off.
    gunicorn_timeout: int = Field(default=60, ge=0, le=24 * 3600)
    gunicorn_graceful_timeout: int = Field(default=30, ge=0, le=3600)
    gunicorn_keepalive: int = Field(default=5, ge=0, le=3600)
    gunicorn_backlog: int = Field(default=2048, ge=1, le=65535)
    # Recycle workers now and then (leaks in native libraries), staggered so they never all
    # restart at once; 0 never recycles.
    gunicorn_max_requests: int = Field(default=10_000, ge=0)
    gunicorn_max_requests_jitter: int = Field(default=1000, ge=0)
    # access.log and error.log go there instead of stdout / stderr.
    gunicorn_log_dir: Path | None = None
    access_log: bool = True
    log_level: LogLevel = "info"
    # The soft open-files limit the master raises itself to (up to the hard limit).
    nofile_limit: int = Field(default=65_536, ge=1024)

    @field_validator("gunicorn_log_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # The flag's old reading: empty means off (ACCESS_LOG=).
    @field_validator("access_log", mode="before")
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or False
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item in ("", "*"):
                continue
            try:
                ipaddress.ip_network(item)  # strict, as Gunicorn: 10.0.0.1/8 is a mistake
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, or *)"
                ) from None
        return value

    @property
    def bind(self) -> list[str]:
        return [f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"]

    @property
    def access_log_file(self) -> str | None:
        """Gunicorn's ``accesslog``: a file in the log folder, stdout ("-"), or None (off)."""
        if self.gunicorn_log_dir:
            return str(self.gunicorn_log_dir / "access.log")
        return "-" if self.access_log else None

    @property
    def error_log_file(self) -> str:
        return str(self.gunicorn_log_dir / "error.log") if self.gunicorn_log_dir else "-"


@lru_cache
def get_server_settings() -> ServerSettings:
    return ServerSettings()


def explain(*errors: ValidationError) -> str:
    """One line per invalid variable, e.g. ``PORT='abc': Input should be a valid integer``."""
    lines = []
    for problem in (p for error in errors for p in error.errors(include_url=False)):
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["loc"]:
            name = str(problem["loc"][0]).upper()
            value = "(hidden)" if any(word in name for word in _SECRET_WORDS) else repr(problem["input"])
            lines.append(f"  {name}={value}: {message}")
        else:  # a rule over several variables, which its message names
            lines.append(f"  {message}")
    return "invalid configuration:\n" + "\n".join(lines)
