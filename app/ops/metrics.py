"""Prometheus metrics (``/metrics``), in prometheus-client's multiprocess mode under
Gunicorn: ``gunicorn_config.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder
before the workers start, so every worker's samples are summed at scrape time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter("http_requests_total", "HTTP requests served.", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being served.", multiprocess_mode="livesum")
OVERLOAD_REJECTED = Counter("http_requests_rejected_overload_total", "Requests refused with 503 (overload).")


class DatabaseCollector(Collector):
    """Queue depth and totals read from the database at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.ops.service import database_figures

        figures = database_figures()
        jobs = GaugeMetricFamily("face_jobs", "Face jobs by kind and status.", labels=["kind", "status"])
        for kind in ("photos", "selfies"):
            for status, n in figures[kind].items():
                jobs.add_metric([kind, status], n)
        yield jobs
        for name in ("faces_indexed", "guests_registered", "events"):
            yield GaugeMetricFamily(name, name.replace("_", " ").capitalize() + ".", value=figures[name])


def render() -> tuple[bytes, str]:
    registry: Any
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
