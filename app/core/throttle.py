"""Throttles: how often a client may fail (a wrong event code, a wrong password) or act.

Built on the `limits` library with moving windows. Counts live in memory by default (one
process: each Gunicorn worker counts on its own) or in Redis when ``REDIS_URL`` is set (shared
by every worker of every server). Limits are on failures and per account wherever possible,
so that a venue whose guests all share one Wi-Fi address is not refused while a scan of
codes or passwords is: the figures are in the README ("Security").

If Redis cannot be reached the throttles let requests through (and log it): a rate limiter
must not take the service down with it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.core.config import get_settings
from app.core.errors import AppError

log = logging.getLogger("app.throttle")


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many attempts. Wait a moment and try again."


@lru_cache
def _limiter() -> MovingWindowRateLimiter:
    settings = get_settings()
    storage: Any
    if settings.redis_url:
        storage = storage_from_string(
            settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            wrap_exceptions=True,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
    else:
        storage = storage_from_string("memory://")
    return MovingWindowRateLimiter(storage)


def reset() -> None:
    """Forget every count (tests; an operator unlocking everyone)."""
    _limiter().storage.reset()


def client_address(request: Request) -> str:
    """The client's address as the throttles count it: the peer, or what the trusted proxy
    says (``FORWARDED_ALLOW_IPS``: Uvicorn rewrites the peer only for trusted proxies)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def forget_limiter() -> None:
    """Build the limiter again from the settings on next use (tests)."""
    _limiter.cache_clear()


@dataclass(frozen=True)
class Throttle:
    """At most the limit of setting ``setting`` (e.g. ``"10/5 minutes"``) hits per key, in a
    moving window."""

    name: str
    setting: str

    @property
    def item(self) -> RateLimitItem:
        return parse(str(getattr(get_settings(), self.setting)))

    def check(self, *key: str, message: str | None = None) -> None:
        """Raise 429 ``too_many_requests`` (with ``Retry-After``) when ``key`` is at its limit."""
        if not get_settings().throttles_enabled:
            return
        try:
            limiter = _limiter()
            if limiter.test(self.item, self.name, *key):
                return
            reset_at = limiter.get_window_stats(self.item, self.name, *key).reset_time
        except StorageError as exc:
            log.error("throttle %s not applied: %s", self.name, exc)
            return
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise TooManyRequests(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)

    def hit(self, *key: str) -> None:
        """Count one (failure) for ``key``."""
        if not get_settings().throttles_enabled:
            return
        try:
            _limiter().hit(self.item, self.name, *key)
        except StorageError as exc:
            log.error("throttle %s not counted: %s", self.name, exc)

    def clear(self, *key: str) -> None:
        try:
            _limiter().clear(self.item, self.name, *key)
        except StorageError as exc:
            log.error("throttle %s not cleared: %s", self.name, exc)
