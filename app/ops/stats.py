"""``/api/stats`` request figures, read from the Prometheus registry (``app.ops.metrics``).

There is one mechanism for figures: the middleware records each request in prometheus-client
metrics (in multiprocess mode under Gunicorn, so every worker's samples are in the server's
metrics folder). This module reads them back: totals per endpoint, percentiles interpolated
within the latency histogram's buckets (as Prometheus' ``histogram_quantile`` does), and the
figures of each worker from its own files.

"Last minute" is the difference between now and an earlier reading of the same registry:
the process answering keeps its readings for a minute, and reports the window it actually
covers (``window_seconds``): everything while the server is younger than a minute, then 60
once the worker has answered a minute earlier, less in a worker that started since.
"""

from __future__ import annotations

import glob
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Metric

from app.ops import metrics

WINDOW_SECONDS = 60.0
STARTED_AT = time.time()


def server_started_at() -> float:
    """When the server started (Gunicorn's master sets ``SERVER_STARTED_AT``), else this process."""
    return float(os.environ.get("SERVER_STARTED_AT", STARTED_AT))


@dataclass
class Series:
    """One endpoint's (or all endpoints') cumulative figures at a reading."""

    count: float = 0.0
    errors: float = 0.0
    seconds: float = 0.0
    #: Cumulative bucket counts by upper bound in seconds (``le``), +Inf included.
    buckets: dict[float, float] = field(default_factory=dict)

    def add(self, other: Series) -> None:
        self.count += other.count
        self.errors += other.errors
        self.seconds += other.seconds
        for le, n in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + n

    def minus(self, earlier: Series | None) -> Series:
        if earlier is None:
            return self
        return Series(
            count=self.count - earlier.count,
            errors=self.errors - earlier.errors,
            seconds=self.seconds - earlier.seconds,
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in seconds, linearly interpolated within its bucket."""
        total = self.buckets.get(math.inf, self.count)
        if total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for le in sorted(self.buckets):
            cumulative = self.buckets[le]
            if cumulative >= rank:
                if math.isinf(le):
                    return lower  # beyond the last finite bound: report that bound
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower  # pragma: no cover - the +Inf bucket holds every observation

    def summary(self) -> dict[str, Any]:
        count = round(self.count)
        return {
            "count": count,
            "errors": round(self.errors),
            "mean_ms": round(self.seconds * 1000 / self.count, 2) if count else None,
            "p95_ms": _ms(self.quantile(0.95)),
            "p99_ms": _ms(self.quantile(0.99)),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _by_endpoint(families: Iterable[Metric]) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for family in families:
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint")
            if endpoint is None:
                continue
            s = series.setdefault(endpoint, Series())
            if sample.name == metrics.REQUESTS_SAMPLE:
                if int(sample.labels.get("status", "0")) >= 500:
                    s.errors += sample.value
            elif sample.name == metrics.LATENCY_SAMPLE + "_count":
                s.count += sample.value
            elif sample.name == metrics.LATENCY_SAMPLE + "_sum":
                s.seconds += sample.value
            elif sample.name == metrics.LATENCY_SAMPLE + "_bucket":
                le = float(sample.labels["le"])
                s.buckets[le] = s.buckets.get(le, 0.0) + sample.value
    return series


@dataclass
class Reading:
    at: float
    endpoints: dict[str, Series]


_readings: deque[Reading] = deque()
_readings_lock = threading.Lock()


def take_reading() -> Reading:
    """The registry now, remembered for later "last minute" windows of this process."""
    reading = Reading(time.time(), _by_endpoint(metrics.collect()))
    with _readings_lock:
        _readings.append(reading)
        # Keep the newest reading at least a window old, and everything after it.
        while len(_readings) > 1 and _readings[1].at <= reading.at - WINDOW_SECONDS:
            _readings.popleft()
    return reading


def _baseline(now: Reading) -> Reading | None:
    """The reading "last minute" is counted from: this process's newest reading a minute old;
    None (everything since the server started) while the server is younger than a minute;
    else this process's oldest reading (a worker started since: a shorter window)."""
    if now.at - server_started_at() <= WINDOW_SECONDS:
        return None
    with _readings_lock:
        older = [r for r in _readings if r is not now]
    due = [r for r in older if r.at <= now.at - WINDOW_SECONDS]
    return due[-1] if due else (older[0] if older else None)


def _worker_figures() -> list[dict[str, Any]]:
    """Each worker's requests (from its own counter file), and for live ones their requests
    in flight and overload refusals."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        families = list(metrics.collect())
        return [_one_worker(os.getpid(), True, families)]
    by_pid: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(folder, "*.db")):
        suffix = Path(path).stem.rsplit("_", 1)[-1]
        if suffix.isdigit():
            by_pid.setdefault(int(suffix), []).append(path)
    workers = []
    for worker_pid, files in sorted(by_pid.items()):
        alive = any("_livesum_" in f for f in files)  # removed when Gunicorn reaps the worker
        families = list(metrics.merge_files(files))
        workers.append(_one_worker(worker_pid, alive, families))
    return workers


def _one_worker(pid: int, alive: bool, families: list[Metric]) -> dict[str, Any]:
    values: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return {
        "pid": pid,
        "alive": alive,
        "requests": round(values.get(metrics.LATENCY_SAMPLE + "_count", 0.0)),
        "in_flight": round(values.get(metrics.IN_FLIGHT_SAMPLE, 0.0)) if alive else 0,
        "rejected_overload": round(values.get(metrics.OVERLOAD_SAMPLE, 0.0)),
    }


def request_figures() -> dict[str, Any]:
    """The ``requests`` part of ``/api/stats``: in flight, per worker, in total and over
    the last minute, per endpoint."""
    now = take_reading()
    baseline = _baseline(now)
    window = now.at - (baseline.at if baseline else server_started_at())
    workers = _worker_figures()
    total, minute = Series(), Series()
    endpoints = {}
    for endpoint in sorted(now.endpoints):
        current = now.endpoints[endpoint]
        recent = current.minus(baseline.endpoints.get(endpoint) if baseline else None)
        total.add(current)
        minute.add(recent)
        endpoints[endpoint] = {"total": current.summary(), "last_minute": recent.summary()}
    return {
        "in_flight": sum(w["in_flight"] for w in workers),
        "workers": workers,
        "total": total.summary(),
        "last_minute": {
            **minute.summary(),
            "window_seconds": round(window, 1),
            "requests_per_second": round(minute.count / window, 2) if window > 0 else 0.0,
        },
        "endpoints": endpoints,
    }
