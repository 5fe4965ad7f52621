"""Throttles: how often a client may fail (a wrong event code, a wrong password) or act, and
slots that let one client run one thing at a time (a zip export).

Built on the `limits` library with moving windows. Counts live in memory by default (one
process: each Gunicorn worker counts on its own) or in Redis when ``REDIS_URL`` is set (shared
by every worker of every server). Limits are on failures and per account wherever possible,
so that a venue whose guests all share one Wi-Fi address is not refused while a scan of
codes or passwords is: the figures are in the README ("Security").

When Redis does not answer, the throttles fall back to counting in this process's memory
(per worker, like without Redis) rather than letting everything through: every call to Redis
has a short timeout and no retry, and after a failure Redis is left alone for
``REDIS_RETRY_SECONDS`` (a circuit breaker) before one call tries it again, so a dead or
hanging Redis costs one timeout per period, not one per request. The outage is logged once,
counted in ``/metrics`` (``throttle_backend_degraded``, ``throttle_backend_errors_total``) and
described by :func:`backend_state` for the health check.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter, Gauge
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from app.core.config import get_settings
from app.core.errors import AppError

log = logging.getLogger("app.throttle")
T = TypeVar("T")

DEGRADED = Gauge(
    "throttle_backend_degraded",
    "1 while Redis (REDIS_URL) does not answer and this process counts the throttles on its own.",
    multiprocess_mode="livemax",
)
BACKEND_ERRORS = Counter("throttle_backend_errors_total", "Calls to Redis by the throttles that failed.")
REFUSALS = Counter("throttle_refusals_total", "Requests refused by a throttle (429).", ["throttle"])


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many attempts. Wait a moment and try again."


def too_many(message: str | None, retry_after: int) -> TooManyRequests:
    """A 429 with ``Retry-After``."""
    retry_after = max(1, retry_after)
    return TooManyRequests(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


@dataclass(frozen=True)
class BackendState:
    """Where the throttles count: ``ok`` (Redis answers, or no Redis is configured) or
    ``degraded`` (Redis is configured but does not answer: each process counts on its own)."""

    state: Literal["ok", "degraded"]
    store: Literal["redis", "memory"]
    reason: str | None = None  # the kind of failure, e.g. "TimeoutError"
    detail: str | None = None  # the driver's words (hosts, ports): for operators only
    since: float | None = None  # when the outage began (Unix time)


class _Backends:
    """Redis behind a circuit breaker, and this process's memory for when it is away."""

    def __init__(self) -> None:
        settings = get_settings()
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.slots: dict[str, tuple[str, float]] = {}  # key -> (holder, expires at)
        self.shared: MovingWindowRateLimiter | None = None
        self.retry_seconds = settings.redis_retry_seconds
        if settings.redis_url:
            timeout = settings.redis_timeout
            options: dict[str, Any] = {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                # redis-py retries 3 times with a backoff of up to seconds by default.
                "retry": Retry(NoBackoff(), 0),
            }
            storage: Any = storage_from_string(
                settings.redis_url, key_prefix=settings.redis_key_prefix, wrap_exceptions=True, **options
            )
            self.shared = MovingWindowRateLimiter(storage)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._reason: tuple[str, str] | None = None
        DEGRADED.set(0)

    def _shared_if_up(self) -> MovingWindowRateLimiter | None:
        if self.shared is None:
            return None
        with self._lock:
            if self._down_since is None:
                return self.shared
            if time.monotonic() < self._retry_at:
                return None
            # This call probes Redis; the others keep to memory until it is known to answer.
            self._retry_at = time.monotonic() + self.retry_seconds
            return self.shared

    def _failed(self, exc: Exception) -> None:
        BACKEND_ERRORS.inc()
        cause = exc.__cause__ or exc
        with self._lock:
            self._retry_at = time.monotonic() + self.retry_seconds
            self._reason = (type(cause).__name__, str(cause) or type(cause).__name__)
            if self._down_since is None:
                self._down_since = time.time()
                DEGRADED.set(1)
                log.error(
                    "Redis of the throttles does not answer (%s: %s): counting in each process's "
                    "memory until it does; retried every %ss",
                    *self._reason,
                    self.retry_seconds,
                )

    def _answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                outage = time.time() - self._down_since
                self._down_since, self._reason = None, None
                DEGRADED.set(0)
                log.warning(
                    "Redis of the throttles answers again after %.0fs: counts are shared again",
                    outage,
                )

    def run(self, shared: Callable[[MovingWindowRateLimiter], T], memory: Callable[[], T]) -> T:
        """``shared(redis limiter)`` while Redis answers, else ``memory()``."""
        limiter = self._shared_if_up()
        if limiter is not None:
            try:
                result = shared(limiter)
            except (StorageError, RedisError) as exc:
                self._failed(exc)
            else:
                self._answered()
                return result
        return memory()

    def limiter_call(self, fn: Callable[[MovingWindowRateLimiter], T]) -> T:
        return self.run(fn, lambda: fn(self.memory))

    def state(self) -> BackendState:
        if self.shared is None:
            return BackendState("ok", "memory")
        with self._lock:
            if self._down_since is None:
                return BackendState("ok", "redis")
            reason, detail = self._reason or ("unknown", "unknown")
            return BackendState("degraded", "memory", reason, detail, self._down_since)

    def probe(self) -> None:
        """Ask Redis now (a ping), whatever the circuit breaker says."""
        if self.shared is not None:
            storage: Any = self.shared.storage
            try:
                storage.get_connection().ping()
            except RedisError as exc:
                self._failed(exc)
            else:
                self._answered()


@lru_cache
def _backends() -> _Backends:
    return _Backends()


def backend_state(*, probe: bool = False) -> BackendState:
    """Whether the throttles count in Redis or, Redis being away, per process (``degraded``,
    with the reason). ``probe``: ping Redis first (the start-up summary) instead of
    reporting what the last calls found."""
    backends = _backends()
    if probe:
        backends.probe()
    return backends.state()


def reset() -> None:
    """Forget every count (tests; an operator unlocking everyone)."""
    backends = _backends()
    backends.memory.storage.reset()
    backends.slots.clear()
    backends.run(lambda shared: shared.storage.reset(), lambda: None)


def client_address(request: Request) -> str:
    """The client's address as the throttles count it: the peer, or what the trusted proxy
    says (``FORWARDED_ALLOW_IPS``: Uvicorn rewrites the peer only for trusted proxies)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def from_another_site(request: Request) -> bool:
    """Whether a browser sent the request for another site's page rather than for its visitor
    (Fetch Metadata): an ``<img>``, a frame, a script or a fetch of a foreign page. A visitor
    following a link or a QR code navigates: that is theirs."""
    if request.headers.get("sec-fetch-site") not in ("cross-site", "same-site"):
        return False
    navigating = request.headers.get("sec-fetch-mode") == "navigate"
    return not (navigating and request.headers.get("sec-fetch-dest", "document") == "document")


def counted_address(request: Request) -> str | None:
    """The client's address for a throttle of failures, or None when another site's page made
    the browser send the request: those failures are not the visitor's, and counting them
    would let any web page fill a venue's limit."""
    return None if from_another_site(request) else client_address(request)


CountedAddress = Annotated[str | None, Depends(counted_address)]


def forget_limiter() -> None:
    """Build the limiter again from the settings on next use (tests)."""
    _backends.cache_clear()


@dataclass(frozen=True)
class Throttle:
    """At most the limit of setting ``setting`` (e.g. ``"10/5 minutes"``) hits per key, in a
    moving window."""

    name: str
    setting: str

    @property
    def item(self) -> RateLimitItem:
        return parse(str(getattr(get_settings(), self.setting)))

    def wait(self, *key: str) -> int | None:
        """Seconds until ``key`` is under its limit again, or None when it is under it now."""
        if not get_settings().throttles_enabled:
            return None
        item = self.item

        def seconds(limiter: MovingWindowRateLimiter) -> int | None:
            if limiter.test(item, self.name, *key):
                return None
            reset_at = limiter.get_window_stats(item, self.name, *key).reset_time
            return max(1, math.ceil(reset_at - time.time()))

        return _backends().limiter_call(seconds)

    def refusal(self, *key: str, message: str | None = None) -> TooManyRequests | None:
        """The 429 for ``key`` when it is at its limit (counted in ``/metrics``), else None."""
        retry_after = self.wait(*key)
        if retry_after is None:
            return None
        REFUSALS.labels(self.name).inc()
        return too_many(message, retry_after)

    def check(self, *key: str, message: str | None = None) -> None:
        """Raise 429 ``too_many_requests`` (with ``Retry-After``) when ``key`` is at its limit."""
        refusal = self.refusal(*key, message=message)
        if refusal is not None:
            raise refusal

    def hit(self, *key: str) -> None:
        """Count one (failure) for ``key``."""
        if get_settings().throttles_enabled:
            item = self.item
            _backends().limiter_call(lambda limiter: limiter.hit(item, self.name, *key))

    def clear(self, *key: str) -> None:
        item = self.item
        _backends().limiter_call(lambda limiter: limiter.clear(item, self.name, *key))


@dataclass(frozen=True)
class Slot:
    """One holder at a time per key (in Redis when it answers, else in this process), for at
    most ``ttl`` seconds unless refreshed: a holder that dies without releasing it frees it."""

    name: str
    ttl: float

    def _key(self, key: str) -> str:
        return f"slot/{self.name}/{key}"

    def acquire(self, key: str) -> str | None:
        """A holder token, or None when someone holds the slot already."""
        if not get_settings().throttles_enabled:
            return "unthrottled"
        backends, token, name = _backends(), secrets.token_hex(8), self._key(key)

        def in_redis(limiter: MovingWindowRateLimiter) -> bool:
            storage: Any = limiter.storage
            expiry = int(self.ttl * 1000)
            return bool(storage.storage.set(storage.prefixed_key(name), token, nx=True, px=expiry))

        def in_memory() -> bool:
            with backends._lock:
                held = backends.slots.get(name)
                if held is not None and held[1] > time.monotonic():
                    return False
                backends.slots[name] = (token, time.monotonic() + self.ttl)
                return True

        return token if backends.run(in_redis, in_memory) else None

    def refresh(self, key: str, token: str) -> None:
        """Keep holding the slot for another ``ttl``."""
        backends, name = _backends(), self._key(key)

        def in_redis(limiter: MovingWindowRateLimiter) -> None:
            storage: Any = limiter.storage
            if storage.storage.get(storage.prefixed_key(name)) == token.encode():
                storage.storage.pexpire(storage.prefixed_key(name), int(self.ttl * 1000))

        def in_memory() -> None:
            with backends._lock:
                if backends.slots.get(name, ("", 0.0))[0] == token:
                    backends.slots[name] = (token, time.monotonic() + self.ttl)

        backends.run(in_redis, in_memory)

    def release(self, key: str, token: str) -> None:
        backends, name = _backends(), self._key(key)

        def in_redis(limiter: MovingWindowRateLimiter) -> None:
            storage: Any = limiter.storage
            if storage.storage.get(storage.prefixed_key(name)) == token.encode():
                storage.storage.delete(storage.prefixed_key(name))

        def in_memory() -> None:
            with backends._lock:
                if backends.slots.get(name, ("", 0.0))[0] == token:
                    del backends.slots[name]

        backends.run(in_redis, lambda: None)
        in_memory()  # also a slot taken in memory while Redis was away
