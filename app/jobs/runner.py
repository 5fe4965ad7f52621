"""Face worker processes: each claims jobs from the database and runs the face engine.

``python -m app.worker`` starts a supervisor with ``FACE_WORKERS`` processes (spawned,
not forked, so each loads the dlib models itself). The supervisor restarts a process
that dies, stops them gracefully on SIGTERM/SIGINT and exits when its parent (the
Gunicorn master, in the embedded mode) disappears. Workers run at a lower CPU priority
so that the web workers always answer first on a busy machine.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from sqlalchemy.exc import OperationalError

from app.core.config import get_settings

log = logging.getLogger("app.worker")

_stopping = False


def _request_stop(_signum: int, _frame: FrameType | None) -> None:
    global _stopping
    _stopping = True


def work_once(*, worker_id: str) -> bool:
    """Run one job, selfies first (a guest is waiting); False when there was none."""
    from app.faces.provider import get_face_provider
    from app.photos.service import index_next_photo
    from app.selfies.service import process_next_selfie

    provider = get_face_provider()
    return process_next_selfie(worker_id=worker_id, provider=provider) or index_next_photo(
        worker_id=worker_id, provider=provider
    )


def worker_main(index: int, nice: int) -> None:
    """One face worker process."""
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [face-worker %(process)d] %(levelname)s %(message)s"
    )
    if nice:
        os.nice(nice)
    from app.faces.provider import get_face_provider

    provider = get_face_provider()
    load = getattr(provider, "load_models", None)
    if load:
        load()
    settings = get_settings()
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{index}"
    log.info("face worker %s ready (%r)", worker_id, provider)
    idle = settings.job_poll_interval
    while not _stopping:
        try:
            did = work_once(worker_id=worker_id)
        except OperationalError as exc:  # database down or not migrated: say it in one line
            log.error("face worker cannot reach the database: %s", str(exc.orig).strip().splitlines()[0])
            did = False
            time.sleep(2)
        except Exception:
            log.exception("face worker loop error")
            did = False
            time.sleep(1)
        if not did:
            time.sleep(idle)


def run_supervisor(processes: int, *, nice: int) -> int:
    """Keep ``processes`` face workers alive until asked to stop."""
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    ctx = multiprocessing.get_context("spawn")
    parent = os.getppid()
    children: dict[int, BaseProcess] = {}

    def start(i: int) -> None:
        p = ctx.Process(target=worker_main, args=(i, nice), name=f"face-worker-{i}", daemon=True)
        p.start()
        children[i] = p

    for i in range(processes):
        start(i)
    log.info("face worker pool: %d processes", processes)
    while not _stopping:
        time.sleep(0.5)
        if os.getppid() != parent:  # our parent died without stopping us
            break
        for i, p in list(children.items()):
            if not p.is_alive():
                log.warning("face worker %s exited with %s; restarting it", p.pid, p.exitcode)
                start(i)
    for p in children.values():
        if p.is_alive() and p.pid:
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in children.values():
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--processes", type=int, default=settings.face_workers)
    parser.add_argument(
        "--nice", type=int, default=settings.face_worker_nice, help="CPU priority offset of the workers"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [face-pool %(process)d] %(levelname)s %(message)s"
    )
    return run_supervisor(max(1, args.processes), nice=args.nice)


if __name__ == "__main__":
    sys.exit(main())
