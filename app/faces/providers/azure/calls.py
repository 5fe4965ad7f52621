"""Every request to Azure Face goes through :class:`Calls`: a timeout, bounded retries and a
circuit breaker, and one translation of failures into what the job runner understands.

- Timeout: msrest's connection timeout (``AZURE_FACE_TIMEOUT``) on every request.
- Retries (tenacity): connection errors, timeouts, 5xx and 408 with jittered exponential
  backoff; 429 after its ``Retry-After`` when that is at most ``MAX_RETRY_AFTER_SLEEP``.
  ``AZURE_FACE_MAX_RETRIES`` retries at most. Other 4xx are answers and never retried.
- Circuit breaker (pybreaker): ``AZURE_FACE_CIRCUIT_FAILURES`` consecutive failed requests
  (connection errors, timeouts, 5xx, 408, refused credentials) open it; calls then fail fast
  for ``AZURE_FACE_CIRCUIT_RESET_SECONDS``, then one trial call closes or re-opens it. Any
  answer (2xx, 4xx, 429 included) counts as the service being up.
- When Azure cannot answer, :class:`ProviderUnavailable` (the job is postponed without using
  an attempt); an image Azure cannot read on ``detect`` is ``UnsupportedMediaType``; any other
  4xx is the SDK's ``APIErrorException`` for the caller to decide.

pybreaker holds its lock for the length of a call, so one process makes one call at a time;
face workers are single-threaded processes, so nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pybreaker
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from app.core.errors import UnsupportedMediaType
from app.faces.providers.base import ProviderUnavailable

if TYPE_CHECKING:
    from azure.cognitiveservices.vision.face import FaceClient

log = logging.getLogger("app.faces.providers.azure")

T = TypeVar("T")

#: Longest ``Retry-After`` slept inside a call; a longer one postpones the job instead.
MAX_RETRY_AFTER_SLEEP = 30.0

_UNREADABLE = "The face service could not read this image. Upload a JPEG or PNG photo."
_UNREADABLE_CODES = frozenset({"InvalidImage", "InvalidImageSize"})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an SDK error, if it has one."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def error_code(exc: BaseException) -> str:
    """Azure's error code (``InvalidImage``, ``LargeFaceListNotFound``...), or ``""``."""
    error = getattr(getattr(exc, "error", None), "error", None)
    return str(getattr(error, "code", "") or "")


def retry_after(exc: BaseException, default: float = 1.0) -> float:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _is_transport_error(exc: BaseException) -> bool:
    from msrest.exceptions import ClientRequestError

    return isinstance(exc, ClientRequestError)


def _is_failure(exc: BaseException) -> bool:
    """Whether the service failed us (for the breaker): no answer, 5xx, 408, 401/403."""
    if _is_transport_error(exc):
        return True
    status = status_of(exc) or 0
    return status >= 500 or status in (408, 401, 403)


def _is_transient(exc: BaseException) -> bool:
    """Whether the same request may succeed if sent again soon."""
    if _is_transport_error(exc):
        return True
    status = status_of(exc) or 0
    if status == 429:
        return retry_after(exc) <= MAX_RETRY_AFTER_SLEEP
    return status >= 500 or status == 408


def _reason(exc: BaseException, seconds: float | None = None) -> str:
    if _is_transport_error(exc):
        inner = getattr(exc, "inner_exception", None) or exc
        took = f" after {seconds:.2f} s" if seconds is not None else ""
        return f"{type(inner).__name__}{took}"
    return f"HTTP {status_of(exc)} {error_code(exc)}".strip()


class _BreakerLog(pybreaker.CircuitBreakerListener):
    """Logs the circuit's changes and remembers when it opened (for ``Retry-After``)."""

    def __init__(self) -> None:
        self.opened_at = 0.0

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        new = new_state.name if new_state else ""
        if new == pybreaker.STATE_OPEN:
            self.opened_at = time.monotonic()
            log.error(
                "Azure Face circuit open after %d consecutive failures: failing fast for %.1f s",
                cb.fail_counter,
                cb.reset_timeout,
            )
        elif new == pybreaker.STATE_HALF_OPEN:
            log.info("Azure Face circuit half-open: trying one call")
        elif new == pybreaker.STATE_CLOSED and old_state is not None:
            log.warning("Azure Face circuit closed: the service answers again")


def make_client(endpoint: str, key: str, timeout: float) -> FaceClient:
    """The SDK client, with msrest's own retries turned off so :class:`Calls` sees each status."""
    from azure.cognitiveservices.vision.face import FaceClient
    from msrest.authentication import CognitiveServicesCredentials

    client = FaceClient(endpoint, CognitiveServicesCredentials(key))
    client.config.connection.timeout = timeout  # type: ignore[assignment]  # msrest accepts floats
    # msrest gives its sessions a urllib3 Retry (3 retries; every 5xx and 429 retried, then
    # raised as RetryError). Mutated in place, since the session msrest already created for
    # this thread holds that very object.
    retry = client.config.retry_policy
    retry.retries = 0
    retry.policy.status = 0
    retry.policy.redirect = 0
    retry.policy.status_forcelist = frozenset()
    retry.policy.raise_on_status = False
    retry.policy.respect_retry_after_header = False
    return client


class Calls:
    """Runs SDK requests with retries and a circuit breaker (see the module docstring)."""

    def __init__(
        self,
        *,
        max_retries: int,
        circuit_failures: int,
        circuit_reset_seconds: float,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._breaker_log = _BreakerLog()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=circuit_failures,
            reset_timeout=circuit_reset_seconds,
            exclude=[lambda exc: not _is_failure(exc)],
            listeners=[self._breaker_log],
            name="azure-face",
            # The call that trips the circuit reports its own error, not "circuit open".
            throw_new_error_on_trip=False,
        )

    def __call__(self, what: str, request: Callable[[], T]) -> T:
        """``request()`` (called once per attempt, so it must build fresh streams)."""
        from azure.cognitiveservices.vision.face.models import APIErrorException

        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: self._log_retry(what, state),
            reraise=True,
        )
        try:
            result: T = retrying(self.breaker.call, request)
            return result
        except pybreaker.CircuitBreakerError as exc:
            remaining = self._breaker_log.opened_at + self.breaker.reset_timeout - time.monotonic()
            raise ProviderUnavailable(
                "Azure Face is failing; calls are paused (circuit open).", retry_after=max(1.0, remaining)
            ) from exc
        except APIErrorException as exc:
            status = status_of(exc) or 0
            if status == 429:
                wait = retry_after(exc)
                log.warning("Azure Face %s throttled (429); giving up (Retry-After %.0f s)", what, wait)
                raise ProviderUnavailable(
                    "Azure Face is throttling requests.", retry_after=max(1.0, wait)
                ) from exc
            if status in (401, 403):
                log.error(
                    "Azure Face refused the request (%s %s): check AZURE_FACE_KEY, AZURE_FACE_ENDPOINT "
                    "and that the resource is approved for identification features",
                    status,
                    error_code(exc),
                )
                raise ProviderUnavailable(
                    f"Azure Face refused our credentials ({status}).", retry_after=self.breaker.reset_timeout
                ) from exc
            if _is_failure(exc):
                raise self._gave_up(what, exc, None) from exc
            if status == 400 and what == "detect" and error_code(exc) in _UNREADABLE_CODES:
                raise UnsupportedMediaType(_UNREADABLE, code="unsupported_format") from exc
            raise
        except Exception as exc:
            if _is_transport_error(exc):
                raise self._gave_up(what, exc, time.monotonic() - started) from exc
            raise

    def _gave_up(self, what: str, exc: BaseException, seconds: float | None) -> ProviderUnavailable:
        reason = _reason(exc, seconds)
        log.error("Azure Face %s failed (%s); %d tries used", what, reason, self.max_retries + 1)
        return ProviderUnavailable(
            f"Azure Face did not answer {what} ({reason}).", retry_after=self.breaker.reset_timeout
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and status_of(exc) == 429:
            return retry_after(exc)
        backoff = wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max)
        return float(backoff(state))

    def _log_retry(self, what: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        if exc is not None and status_of(exc) == 429:
            log.warning("Azure Face %s throttled (429): retrying in %.2f s (Retry-After)", what, delay)
            return
        log.warning(
            "Azure Face %s failed (%s): retry %d/%d in %.2f s",
            what,
            _reason(exc) if exc else "?",
            state.attempt_number,
            self.max_retries,
            delay,
        )
