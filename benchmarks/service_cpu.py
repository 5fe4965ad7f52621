"""CPU of the whole service per selfie and per 12 MP crowd photo, read from /proc.

    .venv/bin/python -m benchmarks.service_cpu [--guests 13] [--photos 8] [--workers 8]

Starts the service as ``make run`` does (Gunicorn with ``gunicorn_config.py``: web workers and
the embedded face-worker pool) on a scratch database (SQLite, or ``DATABASE_URL``). Guests are
registered and logged in first; then the CPU time (user + system, from ``/proc/<pid>/stat``)
of every process of the server is read before and after:

- each guest uploads one selfie at once and follows it with the long-poll to its verdict
  and matches (HTTP, the selfie job, the face check and the matching);
- the organizer uploads crowd frames of 12 MP (``tools.composites.make_crowd``) and
  waits until every one is indexed (HTTP, faces, thumbnail, served copy, matching).

Printed: CPU per selfie and per photo for the whole service, and the wall time of each.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from app.faces.engine import LocalDlibEngine
from tools.accounts import PASSWORD, create_organizer_cli
from tools.composites import make_crowd
from tools.harness.server import running_server
from tools.paths import DEVSET

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # ppid, then utime, stime, cutime, cstime (fields 4 and 14-17 of proc(5))
    return int(fields[1]), sum(int(v) for v in fields[11:15]) / TICK


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds of ``root`` and every process below it (exited children included through
    their parent's cutime and cstime), per kind: ``face`` (the face-worker pool), ``web``
    (the Gunicorn master and its web workers), and ``all``."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p))) is not None}
    out = {"all": 0.0, "face": 0.0, "web": 0.0}
    todo = [(root, "web")]
    while todo:
        pid, kind = todo.pop()
        if kind == "web" and b"app.worker" in _cmdline(pid):
            kind = "face"
        seconds = stats.get(pid, (0, 0.0))[1]
        out[kind] += seconds
        out["all"] += seconds
        todo.extend((child, kind) for child, (ppid, _) in stats.items() if ppid == pid)
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _per(before: dict[str, float], after: dict[str, float], n: int) -> str:
    return ", ".join(f"{kind} {1000 * (after[kind] - before[kind]) / n:.0f} ms" for kind in ("web", "face"))


def server_pid() -> int:
    """The Gunicorn master this process started."""
    me = os.getpid()
    for p in os.listdir("/proc"):
        stat = _stat(int(p)) if p.isdigit() else None
        if stat is not None and stat[0] == me and b"gunicorn" in Path(f"/proc/{p}/cmdline").read_bytes():
            return int(p)
    raise RuntimeError("no Gunicorn master among this process's children")


def _verdict(base: str, token: str, data: bytes) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    r = httpx.post(
        f"{base}/api/upload-selfie", files={"file": ("selfie.jpg", data)}, headers=headers, timeout=60
    )
    r.raise_for_status()
    while True:
        state = httpx.get(f"{base}/api/selfie?wait=30", headers=headers, timeout=60).json()
        if state["status"] not in ("checking", "matching"):
            return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guests", type=int, default=13)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8, help="web workers (make run: 8)")
    parser.add_argument(
        "--warm-up", type=int, default=13, help="guests whose selfies are sent first, not measured"
    )
    args = parser.parse_args(argv)
    selfies = [p.read_bytes() for p in sorted(DEVSET.glob("[!g]*.jpg"))]
    frames = [p.data for p in make_crowd(LocalDlibEngine(), DEVSET, frames=args.photos, seed=23).photos]
    with running_server(workers=args.workers) as (base, environ):
        create_organizer_cli(environ, "boss")
        login = httpx.post(f"{base}/api/login", json={"login": "boss", "password": PASSWORD}, timeout=60)
        org = {"Authorization": f"Bearer {login.json()['access_token']}"}
        event = httpx.post(f"{base}/api/events", json={"name": "Bench"}, headers=org, timeout=60).json()
        tokens = []
        for i in range(args.warm_up + args.guests):
            r = httpx.post(
                f"{base}/api/register-with-event-code",
                json={"event_code": event["code"], "username": f"guest{i}", "email": f"guest{i}@example.com",
                      "password": PASSWORD, "accept_face_processing": True},
                timeout=60,
            )  # fmt: skip
            tokens.append(r.json()["access_token"])
        pid = server_pid()
        # Every process has served its first requests and jobs (imports, first inferences).
        with ThreadPoolExecutor(max(1, args.warm_up)) as pool:
            list(pool.map(_verdict, [base] * args.warm_up, tokens[: args.warm_up], selfies * args.warm_up))
        tokens = tokens[args.warm_up :]
        time.sleep(2)
        before = tree_cpu(pid)
        with ThreadPoolExecutor(args.guests) as pool:
            waits = list(
                pool.map(
                    _verdict,
                    [base] * args.guests,
                    tokens,
                    [selfies[i % len(selfies)] for i in range(args.guests)],
                )
            )
        after = tree_cpu(pid)
        per_selfie = 1000 * (after["all"] - before["all"]) / args.guests
        print(
            f"{args.guests} selfies at once: {per_selfie:.0f} ms of CPU per selfie for the whole service "
            f"({_per(before, after, args.guests)}); last verdict after {max(waits):.1f} s"
        )
        before, started = tree_cpu(pid), time.monotonic()
        files = [("files", (f"crowd-{i}.jpg", data)) for i, data in enumerate(frames)]
        httpx.post(
            f"{base}/api/events/{event['id']}/photos", files=files, headers=org, timeout=120
        ).raise_for_status()
        while True:
            counts = httpx.get(f"{base}/api/events/{event['id']}", headers=org, timeout=60).json()["photos"]
            if counts["pending"] == counts["processing"] == 0:
                break
            time.sleep(0.5)
        after = tree_cpu(pid)
        per_photo = 1000 * (after["all"] - before["all"]) / args.photos
        print(
            f"{args.photos} crowd photos of 12 MP: {per_photo:.0f} ms of CPU per photo for the whole service "
            f"({_per(before, after, args.photos)}; upload, faces, thumbnail, served copy, matching); "
            f"all indexed after {time.monotonic() - started:.1f} s; {counts}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
