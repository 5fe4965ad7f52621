"""The "your photos are here" fan-out: 5,000 guests of one event get new matches in one batch.
Measures the time from the batch settling (the last guest's notice due, ``guest_notices.due_at``)
until every guest's message is a row of the outbox (target: 60 s), then until a real SMTP server
on 127.0.0.1 (STARTTLS + AUTH, ``tools.harness.smtp``) has received them all, and the send rate
next to the server's own pace with one plain smtplib client; then checks that none is lost or
duplicated: every guest received exactly one message, the Message-IDs are unique and those of
the outbox, every outbox row is ``done`` and counts the guest's new photos.

How: a scratch DATA_DIR, migrated; the event seeded with bulk inserts (``tools.notify_seed``);
the face workers started as the service runs them (``python -m app.worker --processes N``)
and awaited; then, photo by photo, what the photo job's matching step does (the photo's
matches and ``notices.service.photos_matched``, committed), with a short NOTIFY_QUIET_SECONDS
and NOTIFY_MIN_INTERVAL_SECONDS=0. Prints a table, a PASS/FAIL line per target, the CPU count
and the database kind; exits 1 when a target is missed.

    .venv/bin/python -m benchmarks.notify_fanout [--guests 5000] [--photos 50] [--per-guest 2]
        [--quiet 2] [--workers 2] [--baseline 500]
    .venv/bin/python -m benchmarks.notify_fanout --database-url postgresql://postgres@127.0.0.1:5432/notify_bench

On PostgreSQL give an empty database you created (it refuses one that already has tables); it is
left migrated and seeded, drop it afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.harness.smtp import SmtpServer, running_smtp
from tools.paths import ROOT

if TYPE_CHECKING:
    from tools.notify_seed import Seeded

READY_TIMEOUT = 180.0  # the workers load the face models at start


@dataclass(frozen=True)
class Received:
    """What the SMTP server holds: each message's recipients, To, Message-ID and arrival time."""

    rcpts: list[str]
    to: list[str]
    message_ids: list[str]
    arrived: list[float]  # the .eml files' mtimes, sorted


@dataclass(frozen=True)
class Outbox:
    user_ids: list[int]
    message_ids: list[str]
    statuses: Counter[str]
    photos_counts: Counter[int]
    first_created: datetime
    last_created: datetime


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.notify_fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--guests", type=int, default=5000)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--per-guest", type=int, default=2, help="photos of the batch each guest is in")
    parser.add_argument("--quiet", type=int, default=2, help="NOTIFY_QUIET_SECONDS")
    parser.add_argument("--workers", type=int, default=2, help="face worker processes")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--target", type=float, default=60.0, help="seconds to queue them all")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up this long after settling")
    parser.add_argument("--baseline", type=int, default=500, help="messages of the raw pace (0: skip)")
    return parser.parse_args(argv)


def _environment(args: argparse.Namespace, scratch: Path, smtp: SmtpServer) -> dict[str, str]:
    """Set this process's environment (read once, by the settings) and return it for the workers."""
    os.environ.update(
        {
            "DATA_DIR": str(scratch / "data"),
            "DATABASE_URL": args.database_url or f"sqlite:///{scratch / 'data' / 'app.db'}",
            "ENVIRONMENT": "test",
            "SMTP_URL": smtp.url,
            "SMTP_CA_FILE": str(smtp.ca_file),
            "PUBLIC_URL": "http://127.0.0.1:8000",
            "NOTIFY_QUIET_SECONDS": str(args.quiet),
            "NOTIFY_MIN_INTERVAL_SECONDS": "0",
        }
    )
    (scratch / "data").mkdir(parents=True, exist_ok=True)
    return dict(os.environ)


def _migrate() -> str:
    """Migrate the scratch database; its kind. Refuses a PostgreSQL database that has tables."""
    from sqlalchemy import inspect

    from app.core.database import get_engine
    from app.core.migrations import upgrade

    engine = get_engine()
    if engine.dialect.name != "sqlite" and inspect(engine).get_table_names():
        raise SystemExit(f"{engine.url.database}: not empty; give a database created for this benchmark")
    upgrade()
    return engine.dialect.name


def _start_workers(processes: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m app.worker`` in its own process group; returns once every process is ready."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--processes", str(processes)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while log.read_text(errors="replace").count(" ready for ") < processes:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_workers(proc)
            raise RuntimeError(f"the face workers did not start; see {log}")
        time.sleep(0.2)
    return proc


def _stop_workers(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the pool (it stops its processes), then SIGKILL to its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _outbox_progress(event_id: int) -> tuple[int, int, int]:
    """(rows of the event's notifications in the outbox, of which done, of which failed)."""
    from sqlalchemy import case, func, select

    from app.core.database import session_scope
    from app.mail.models import OutboxMessage

    def count(status: str) -> Any:
        return func.coalesce(func.sum(case((OutboxMessage.status == status, 1), else_=0)), 0)

    with session_scope() as session:
        rows, done, failed = session.execute(
            select(func.count(), count("done"), count("failed")).where(
                OutboxMessage.event_id == event_id, OutboxMessage.kind == "photos"
            )
        ).one()
    return int(rows), int(done), int(failed)


def _wait(seeded: Seeded, maildir: Path, guests: int, deadline: float) -> tuple[bool, float | None]:
    """Until every notification is written and sent (or failed) and the server holds as many:
    whether it came to that before the deadline, and when all rows were first seen committed."""
    seen: float | None = None
    while time.monotonic() < deadline:
        rows, done, failed = _outbox_progress(seeded.event_id)
        if rows >= guests and seen is None:
            seen = time.time()
        received = sum(1 for entry in os.scandir(maildir) if entry.name.endswith(".eml"))
        if rows >= guests and done + failed == rows and received >= done:
            time.sleep(3)  # a late duplicate would show now
            return True, seen
        time.sleep(0.2)
    return False, seen


def _outbox(event_id: int) -> Outbox:
    from sqlalchemy import select

    from app.core.database import session_scope
    from app.mail.models import OutboxMessage

    with session_scope() as session:
        rows = session.execute(
            select(
                OutboxMessage.user_id,
                OutboxMessage.message_id,
                OutboxMessage.status,
                OutboxMessage.photos_count,
                OutboxMessage.created_at,
            ).where(OutboxMessage.event_id == event_id, OutboxMessage.kind == "photos")
        ).all()
    if not rows:
        raise RuntimeError("no notification was written")
    created = [r[4] for r in rows]
    return Outbox(
        user_ids=[int(r[0] or 0) for r in rows],
        message_ids=[r[1] for r in rows],
        statuses=Counter(r[2] for r in rows),
        photos_counts=Counter(int(r[3] or 0) for r in rows),
        first_created=min(created),
        last_created=max(created),
    )


def _received(server: SmtpServer) -> Received:
    parser = BytesHeaderParser(policy=default)
    rcpts: list[str] = []
    to: list[str] = []
    ids: list[str] = []
    arrived: list[float] = []
    for envelope in server.envelopes():
        rcpts.extend(envelope["rcpt_tos"])
    for path in sorted(server.maildir.glob("*.eml")):
        headers = parser.parsebytes(path.read_bytes())
        to.append(parseaddr(str(headers["To"]))[1])
        ids.append(str(headers["Message-ID"]).strip())
        arrived.append(path.stat().st_mtime)
    return Received(rcpts=rcpts, to=to, message_ids=ids, arrived=sorted(arrived))


def _rate(times: list[float]) -> float:
    """Messages per second between the first and the last of ``times`` (sorted)."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else float("nan")


def _raw_pace(workdir: Path, sample: bytes, count: int, *, noop: bool) -> float:
    """Messages/s one smtplib client gets from a fresh server over one STARTTLS connection
    (``noop``: with a NOOP before each message, as ``app.mail.transport`` checks its connection)."""
    with running_smtp(workdir) as server:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        with smtplib.SMTP(server.host, server.port, timeout=30) as client:
            client.starttls(context=context)
            client.login(server.user or "", server.password or "")
            started = time.perf_counter()
            for i in range(count):
                if noop:
                    client.noop()
                client.sendmail("bench@example.com", [f"pace{i}@example.com"], sample)
            return count / (time.perf_counter() - started)


def _worker_log_counts(log: Path) -> dict[str, int]:
    text = log.read_text(errors="replace")
    needles = {
        "errors": " ERROR ",
        "tracebacks": "Traceback",
        "SQLite write races": "another worker wrote first",
        "lost leases": "lease lost",
        "mail deferred": "not sent yet",
    }
    return {name: text.count(needle) for name, needle in needles.items()}


def _report(
    args: argparse.Namespace,
    seeded: Seeded,
    times: tuple[datetime, float | None],
    batch_seconds: float,
    server: SmtpServer,
    log: Path,
) -> tuple[list[tuple[str, str]], list[tuple[bool, str]]]:
    """The figures (name, value) and the targets (met, what)."""
    out, got = _outbox(seeded.event_id), _received(server)
    (settled, seen), n = times, args.guests
    base = settled.timestamp()
    written = (out.last_created - settled).total_seconds()
    # A row is created at its flush and seen at its step's commit: the later of the two counts.
    queued = max(written, seen - base) if seen is not None else float("inf")
    writing = (out.last_created - out.first_created).total_seconds()
    figures = [
        (f"batch: {args.photos} photos matched (photos_matched, committed)", f"{batch_seconds:.2f} s"),
        ("settled -> first message in the outbox", f"{(out.first_created - settled).total_seconds():.2f} s"),
        ("settled -> last message written (created_at)", f"{written:.2f} s"),
        (f"settled -> all {n} committed in the outbox (0.2 s polls)", f"{queued:.2f} s"),
        (
            "writing rate (first to last row)",
            f"{(len(out.message_ids) - 1) / writing:.0f} msg/s" if writing else "-",
        ),
    ]
    if got.arrived:
        half = len(got.arrived) // 2
        figures += [
            (
                f"settled -> all received by the SMTP server ({len(got.arrived)})",
                f"{got.arrived[-1] - base:.1f} s",
            ),
            ("send rate (first to last received)", f"{_rate(got.arrived):.1f} msg/s"),
            (
                "  first half / second half",
                f"{_rate(got.arrived[: half + 1]):.1f} / {_rate(got.arrived[half:]):.1f} msg/s",
            ),
        ]
    figures += [(f"worker log: {k}", str(v)) for k, v in _worker_log_counts(log).items()]
    emails = set(seeded.emails.values())
    per_rcpt, per_id, per_user = Counter(got.rcpts), Counter(got.message_ids), Counter(out.user_ids)
    lost = len(emails - set(per_rcpt)) + len(set(seeded.emails) - set(per_user))
    twice = sum(1 for c in per_rcpt.values() if c > 1) + sum(1 for c in per_user.values() if c > 1)
    targets = [
        (
            len(out.message_ids) == n and queued <= args.target,
            f"every notification queued within {args.target:.0f} s of the batch settling: "
            f"{len(out.message_ids)}/{n} rows, the last {queued:.1f} s after",
        ),
        (
            lost == 0 and set(per_rcpt) == emails and Counter(got.to) == per_rcpt,
            f"none lost: {len(per_rcpt)}/{n} guests received a message ({len(got.rcpts)} messages)",
        ),
        (
            twice == 0 and max(per_id.values(), default=0) == 1 and set(per_id) == set(out.message_ids),
            f"none duplicated: {twice} guest(s) twice, {len(per_id)} unique Message-IDs, "
            "the outbox's and the server's the same",
        ),
        (out.statuses == Counter({"done": n}), f"every outbox row done: {dict(out.statuses)}"),
        (
            out.photos_counts == Counter({args.per_guest: n}),
            f"every message counts its guest's {args.per_guest} new photos: {dict(out.photos_counts)}",
        ),
    ]
    return figures, targets


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    scratch = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    log = scratch / "workers.log"
    workers: subprocess.Popen[bytes] | None = None
    try:
        with running_smtp(scratch / "smtp") as server:
            env = _environment(args, scratch, server)
            kind = _migrate()
            from tools import notify_seed

            started = time.perf_counter()
            seeded = notify_seed.seed(guests=args.guests, photos=args.photos, per_guest=args.per_guest)
            print(
                f"seeded {args.guests} guests, {args.photos} photos in {time.perf_counter() - started:.1f} s"
            )
            started = time.perf_counter()
            workers = _start_workers(args.workers, env, log)
            print(f"{args.workers} face worker processes ready in {time.perf_counter() - started:.1f} s")
            batch_seconds = notify_seed.match_batch(seeded)
            settled, waiting = notify_seed.settled_at(seeded.event_id)
            print(
                f"batch matched in {batch_seconds:.2f} s: {waiting} notices waiting, "
                f"the last due at {settled:%H:%M:%S.%f} UTC"
            )
            left = settled.timestamp() - time.time() + args.timeout
            finished, seen = _wait(seeded, server.maildir, args.guests, time.monotonic() + left)
            _stop_workers(workers)
            figures, targets = _report(args, seeded, (settled, seen), batch_seconds, server, log)
            sample = next(iter(sorted(server.maildir.glob("*.eml"))), None)
        if args.baseline and sample is not None:
            data = sample.read_bytes()
            plain = _raw_pace(scratch / "pace", data, args.baseline, noop=False)
            checked = _raw_pace(scratch / "pace-noop", data, args.baseline, noop=True)
            figures.append(
                (f"SMTP server's own pace, one smtplib client ({args.baseline} msgs)", f"{plain:.1f} msg/s")
            )
            figures.append(("  the same with a NOOP before each message", f"{checked:.1f} msg/s"))
    finally:
        if workers is not None:
            _stop_workers(workers)
    print(
        f"\nnotify fan-out: {args.guests} guests, {args.photos} photos ({args.per_guest} per guest), "
        f"quiet {args.quiet} s, {args.workers} worker processes, {kind}, {os.cpu_count()} CPUs"
    )
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"  {name:<{width}}  {value}")
    if not finished:
        targets.insert(0, (False, f"finished within {args.timeout:.0f} s of settling"))
    for ok, what in targets:
        print(f"{'PASS' if ok else 'FAIL'} {what}")
    if all(ok for ok, _ in targets):
        shutil.rmtree(scratch, ignore_errors=True)
        return 0
    print(f"kept for a look: {scratch} (workers.log, smtp/maildir, data/)")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
