"""Request statistics shared by every Gunicorn worker, for ``/api/stats``.

Each worker process records its requests in memory (per endpoint: counts, errors, a
latency histogram in total and per second for the last minute) and writes a snapshot
to ``DATA_DIR/stats/<pid>.json`` about once a second. ``/api/stats`` merges the
snapshots of all workers, so it answers for the whole server whichever worker serves it.
A worker that exits keeps its file: its requests stay in the totals; only live workers
count for requests in flight.

Latencies go into logarithmic buckets 5 % wide (the DDSketch idea), so histograms of
different workers and seconds merge exactly and percentiles are within 5 %.
Prometheus (``/metrics``) gets the same figures through prometheus-client; this module
exists because a JSON view of "the last minute" has to be computed server-side.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_GAMMA = 1.05
_LOG_GAMMA = math.log(_GAMMA)
WINDOW_SECONDS = 60
STARTED_AT = time.time()


def bucket_of(ms: float) -> int:
    return math.ceil(math.log(max(ms, 0.01)) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """A representative latency of a bucket (its geometric middle), in ms."""
    return 2 * _GAMMA**index / (_GAMMA + 1)


@dataclass
class Series:
    count: int = 0
    errors: int = 0
    total_ms: float = 0.0
    buckets: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, ms: float, error: bool) -> None:
        self.count += 1
        self.errors += error
        self.total_ms += ms
        self.buckets[bucket_of(ms)] += 1

    def merge(self, other: dict[str, Any]) -> None:
        self.count += other["count"]
        self.errors += other["errors"]
        self.total_ms += other["total_ms"]
        for k, v in other["buckets"].items():
            self.buckets[int(k)] += v

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "total_ms": self.total_ms,
            "buckets": dict(self.buckets),
        }

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = math.ceil(p / 100 * self.count)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return bucket_value(index)
        return None  # pragma: no cover

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "errors": self.errors,
            "mean_ms": round(self.total_ms / self.count, 2) if self.count else None,
            "p95_ms": _round(self.percentile(95)),
            "p99_ms": _round(self.percentile(99)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class WorkerStats:
    """This process's requests: totals and one slot per second of the last minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: dict[str, Series] = defaultdict(Series)
        self.seconds: dict[int, dict[str, Series]] = {}
        self.in_flight = 0
        self.rejected_overload = 0
        self.last_overload = 0.0  # time.monotonic() of the last 503 "overloaded"

    def record(self, endpoint: str, ms: float, status: int) -> None:
        now = int(time.time())
        error = status >= 500
        with self._lock:
            self.totals[endpoint].add(ms, error)
            slot = self.seconds.setdefault(now, defaultdict(Series))
            slot[endpoint].add(ms, error)
            for old in [s for s in self.seconds if s <= now - WINDOW_SECONDS]:
                del self.seconds[old]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pid": os.getpid(),
                "written_at": time.time(),
                "in_flight": self.in_flight,
                "rejected_overload": self.rejected_overload,
                "totals": {k: v.to_json() for k, v in self.totals.items()},
                "seconds": {
                    str(s): {k: v.to_json() for k, v in eps.items()} for s, eps in self.seconds.items()
                },
            }


worker_stats = WorkerStats()


def stats_dir(data_dir: Path) -> Path:
    return data_dir / "stats"


def write_snapshot(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{os.getpid()}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(worker_stats.snapshot()))
    os.replace(tmp, target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merged(directory: Path) -> dict[str, Any]:
    """Merge every worker's snapshot (this process's live figures replace its file)."""
    snapshots: dict[int, dict[str, Any]] = {}
    if directory.exists():
        for path in directory.glob("*.json"):
            try:
                snap = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now
            snapshots[snap["pid"]] = snap
    snapshots[os.getpid()] = worker_stats.snapshot()
    now = time.time()
    totals: dict[str, Series] = defaultdict(Series)
    minute: dict[str, Series] = defaultdict(Series)
    workers = []
    in_flight = 0
    for pid, snap in sorted(snapshots.items()):
        alive = pid == os.getpid() or (_alive(pid) and now - snap["written_at"] < 10)
        served = 0
        for endpoint, series in snap["totals"].items():
            totals[endpoint].merge(series)
            served += series["count"]
        for second, endpoints in snap["seconds"].items():
            if int(second) > now - WINDOW_SECONDS:
                for endpoint, series in endpoints.items():
                    minute[endpoint].merge(series)
        if alive:
            in_flight += snap["in_flight"]
        workers.append(
            {
                "pid": pid,
                "alive": alive,
                "requests": served,
                "in_flight": snap["in_flight"] if alive else 0,
                "rejected_overload": snap["rejected_overload"],
            }
        )
    all_total = Series()
    all_minute = Series()
    for s in totals.values():
        all_total.merge(s.to_json())
    for s in minute.values():
        all_minute.merge(s.to_json())
    return {
        "in_flight": in_flight,
        "workers": workers,
        "total": all_total.summary(),
        "last_minute": {
            **all_minute.summary(),
            "requests_per_second": round(all_minute.count / WINDOW_SECONDS, 2),
        },
        "endpoints": {
            endpoint: {"total": totals[endpoint].summary(), "last_minute": minute[endpoint].summary()}
            for endpoint in sorted(totals)
        },
    }


class StatsFlusher:
    """Writes this worker's snapshot about once a second (and a last time at shutdown)."""

    def __init__(self, data_dir: Path, interval: float = 1.0) -> None:
        self.directory = stats_dir(data_dir)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stats-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._write()

    def _write(self) -> None:
        with contextlib.suppress(OSError):  # statistics must never take a worker down
            write_snapshot(self.directory)
