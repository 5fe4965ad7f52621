"""Prometheus metrics: the one record of requests served, for ``/metrics`` and ``/api/stats``,
and the media disk's room read at scrape time (``StorageCollector``).

Under Gunicorn they are in prometheus-client's multiprocess mode: ``gunicorn_config.py``
points ``PROMETHEUS_MULTIPROC_DIR`` at a folder of this server's own before the workers start,
so every worker's samples are summed at read time. Without it (one process, tests) the
default registry is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.core.config import get_settings
from app.core.storage import space

REQUESTS = Counter("http_requests_total", "HTTP requests served.", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "endpoint"],
    # 1, 1.5, 2, 3, 5, 7 per decade from 1 ms to 50 s: percentiles interpolated within a
    # bucket are within a factor 1.5 of the truth.
    buckets=[round(m * 10.0**e, 4) for e in range(-3, 2) for m in (1, 1.5, 2, 3, 5, 7) if m * 10.0**e <= 30]
    + [50.0],
)
IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being served.", multiprocess_mode="livesum")
OVERLOAD_REJECTED = Counter("http_requests_rejected_overload_total", "Requests refused with 503 (overload).")

#: Sample names as read back (``app.ops.stats``).
REQUESTS_SAMPLE = "http_requests_total"
LATENCY_SAMPLE = "http_request_duration_seconds"
IN_FLIGHT_SAMPLE = "http_requests_in_flight"
OVERLOAD_SAMPLE = "http_requests_rejected_overload_total"


class StorageCollector(Collector):
    """The media disk's room at scrape time (local storage only): what is free, its size, the
    floor, and whether uploads are being refused (1) for want of room."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        settings = get_settings()
        if not space.watched(settings):
            return
        disk = space.reading(settings)
        for name, help_text, value in (
            ("storage_free_bytes", "Free bytes on the media disk.", disk.free_bytes),
            ("storage_total_bytes", "Size of the media disk.", disk.total_bytes),
            (
                "storage_min_free_bytes",
                "Free-space floor under which uploads are refused.",
                disk.min_free_bytes,
            ),
            (
                "storage_uploads_refused",
                "1 while uploads are refused for want of room.",
                int(disk.below_floor),
            ),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


def _request_registry() -> CollectorRegistry:
    """A registry of the request metrics of every worker of this server."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    return registry


def collect() -> Iterable[Metric]:
    """The request metrics of every worker of this server, summed."""
    return _request_registry().collect()


def merge_files(files: list[str]) -> Iterable[Metric]:
    """The metrics in some of the multiprocess files (one worker's)."""
    from prometheus_client import multiprocess

    merged: Iterable[Metric] = multiprocess.MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
    return merged


def render(*extra: Collector) -> tuple[bytes, str]:
    """The exposition text of the request metrics and of ``extra`` collectors."""
    registry = _request_registry()
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
