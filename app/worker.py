"""Face workers: ``python -m app.worker [--processes N] [--nice N]``.

The composition root of the background side: importing the domains' ``jobs`` modules
registers their job kinds (selfies, erasures at the face provider, photos, re-descriptions
of faces, event purges: the runner tries them in that order); ``app.jobs.runner`` does the rest.
Processes are spawned, not forked, so each loads the face models itself; they run at a
lower CPU priority so that the web workers answer first on a busy machine. Beside them runs
the node's gallery searcher (``app.faces.searcher``, ``FACE_SEARCHER``), which holds the event
galleries once for all of them. The supervisor restarts a process that dies, stops them on
SIGTERM/SIGINT and exits with its parent (the Gunicorn master, in the embedded mode).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from app.core.config import get_settings
from app.faces.providers.base import LOCAL_PROVIDER
from app.jobs import runner, wakeup


def load_job_kinds() -> None:
    """Register every job kind (each module registers its own on import)."""
    import app.faces.jobs
    import app.mail.jobs
    import app.notices.jobs
    import app.photos.jobs
    import app.photos.reembed
    import app.selfies.jobs  # noqa: F401


def queue_reembeds() -> None:
    """Faces of another model than the configured recognizer's are described again in the
    background (``app.photos.reembed``); queued once, when the face pool starts."""
    settings = get_settings()
    if settings.face_provider != LOCAL_PROVIDER:
        return
    from app.core.database import session_scope
    from app.faces.recognizers import model_of
    from app.photos.reembed import queue_reembeds as queue

    try:
        with session_scope() as session:
            queued = queue(session=session, model=model_of(settings.face_recognizer))
    except Exception:  # the pool must start even when the database cannot answer yet
        logging.getLogger("app.worker").warning(
            "could not look for faces of another model; looked for again at the next start", exc_info=True
        )
        return
    if queued:
        logging.getLogger("app.worker").info(
            "face model %s: re-describing the faces of %d event(s)",
            model_of(settings.face_recognizer),
            len(queued),
        )


def sweep_node_galleries() -> None:
    """This node's copies of event galleries follow the database (``faces.search.sweep_node``):
    nothing of an event, or of a face, deleted elsewhere stays on the node's disk."""
    from app.core.database import session_scope
    from app.faces.search import sweep_node

    with session_scope() as session:
        sweep_node(session=session)


def worker_main(index: int, nice: int) -> None:
    """One face worker process."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [face-worker %(process)d] %(levelname)s %(message)s"
    )
    if nice:
        os.nice(nice)
    from app.core.database import configure_engine
    from app.faces.providers import get_face_provider

    # One connection for the job, one for its heartbeat (plus the LISTEN one on PostgreSQL).
    configure_engine(pool_size=2, max_overflow=0)
    load_job_kinds()
    get_face_provider().load_models()
    runner.serve(index)


def searcher_main(_index: int, nice: int) -> None:
    """The node's gallery searcher (``app.faces.searcher``): the event galleries, searched for
    every face worker of the node."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [gallery-searcher %(process)d] %(levelname)s %(message)s"
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if nice:
        os.nice(nice)
    from app.core.database import configure_engine
    from app.faces import searcher
    from app.faces.search import galleries, local_candidates

    # A lookup at a time per event, from a thread per worker.
    configure_engine(pool_size=2, max_overflow=get_settings().face_workers)
    searcher.serve(lookup=local_candidates, forget=galleries.drop)


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # guests' photos and faces: files 0600, folders 0700
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
    wakeup.remove_stale_sockets(settings)
    queue_reembeds()
    return runner.supervise(
        worker_main,
        max(1, args.processes),
        nice=args.nice,
        maintenance=sweep_node_galleries,
        companion=searcher_main if settings.face_searcher else None,
    )


if __name__ == "__main__":
    sys.exit(main())
