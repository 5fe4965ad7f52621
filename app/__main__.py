"""Command line: ``python -m app migrate``, ``create-organizer`` and ``indexes``."""

from __future__ import annotations

import argparse
import os
import sys

from app.accounts.models import Role
from app.core.errors import AppError


def _create_organizer(args: argparse.Namespace) -> int:
    from app.accounts.service import create_user
    from app.core.database import get_sessionmaker

    with get_sessionmaker()() as session:
        try:
            user = create_user(
                session=session,
                username=args.username,
                email=args.email,
                password=args.password,
                role=Role.admin if args.admin else Role.organizer,
                display_name=args.display_name,
            )
            session.commit()
        except AppError as exc:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            return 1
    print(f"created {user.role} {user.username!r} (id {user.id})")
    return 0


def _purge(_args: argparse.Namespace) -> int:
    """What the daily sweep does, now: queue the due retention purges, then run every pending
    event purge (retention or deletion) to the end in this process."""
    from app.core.database import session_scope
    from app.jobs import runner
    from app.photos import jobs as photo_jobs
    from app.photos import service as photos_service

    with session_scope() as session:
        queued = len(photos_service.queue_retention_purges(session=session))
    done = 0
    while runner.run_one(photo_jobs.PURGE_JOB, worker_id=f"purge-cli-{os.getpid()}"):
        done += 1
    with session_scope() as session:
        orphans = photos_service.sweep_orphan_files(session=session)
    print(f"{queued} event(s) due for retention; {done} purge job(s) run; {orphans} orphan file(s) deleted")
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from app.core.migrations import upgrade

    upgrade()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["indexes"]:  # its options are the DBA script's own
        from app.ops.indexes import main as indexes_main

        return indexes_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m app")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-organizer", help="Create an organizer account.")
    p.add_argument("--username", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--display-name")
    p.add_argument("--admin", action="store_true", help="Create an admin (sees every event).")
    p.set_defaults(func=_create_organizer)
    m = sub.add_parser("migrate", help="Apply the database migrations (alembic upgrade head).")
    m.set_defaults(func=_migrate)
    pg = sub.add_parser(
        "purge", help="Purge the events whose retention is over, and finish pending erasures, now."
    )
    pg.set_defaults(func=_purge)
    sub.add_parser(
        "indexes",
        help="Add the performance indexes to a live database (as add_performance_indexes.py).",
        add_help=False,
    )
    args = parser.parse_args(argv)
    if args.command != "migrate" and _not_migrated():
        return 2
    return int(args.func(args))


def _not_migrated() -> bool:
    from app.core.config import get_settings
    from app.core.migrations import pending
    from app.ops.server import masked_url

    if pending():
        where = masked_url(get_settings().sqlalchemy_url)
        print(
            f"error: the database ({where}) is not migrated: run `python -m app migrate` first",
            file=sys.stderr,
        )
        return True
    return False


if __name__ == "__main__":
    os.umask(0o077)  # the SQLite file and DATA_DIR: for this user only
    raise SystemExit(main())
