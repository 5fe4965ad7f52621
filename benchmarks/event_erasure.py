"""What a full erase of an event costs: N photos (their three files each, real JPEG sizes),
three faces per photo and a guest matched in every photo, on a scratch database; then
``DELETE /api/events/{id}`` and the durable purge job to the end. Prints the seconds of each
part and the bytes left under DATA_DIR afterwards.

    .venv/bin/python -m benchmarks.event_erasure --photos 500
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/loadtest .venv/bin/python -m benchmarks.event_erasure
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tools.paths import FACES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.events.models import Event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=500)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="erase-bench-"))
    os.environ["DATA_DIR"] = str(scratch)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.db'}")
    os.environ["ENVIRONMENT"] = "test"

    # Imported once the environment above is set, so that the settings see it.
    from sqlalchemy import text

    from app.accounts.models import Role
    from app.accounts.service import create_user
    from app.core import storage
    from app.core.database import get_engine, session_scope
    from app.core.migrations import upgrade
    from app.events import service as events_service
    from app.events.models import EventMembership
    from app.events.schemas import EventCreate
    from app.faces.models import Face, FaceMatch
    from app.jobs import runner
    from app.photos import jobs as photo_jobs
    from app.photos import service as photos_service
    from app.photos.models import Photo, PhotoStatus
    from app.selfies.models import Selfie, SelfieStatus

    if os.environ["DATABASE_URL"].startswith("postgres"):
        with get_engine().begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade()
    original = (FACES / "obama2.jpg").read_bytes()
    thumb = (FACES / "obama.jpg").read_bytes()
    started = time.perf_counter()
    with session_scope() as session:
        org = create_user(
            session=session,
            username="org",
            email="org@example.com",
            password="violet harbour compass",
            role=Role.organizer,
        )
        guest = create_user(
            session=session, username="guest", email="g@example.com", password="amber lantern orchestra"
        )
        event = events_service.create_event(session=session, organizer=org, data=EventCreate(name="Bench"))
        session.add(EventMembership(user_id=guest.id, event_id=event.id))
        selfie = Selfie(
            user_id=guest.id, image_key="selfies/x.jpg", status=SelfieStatus.ready, descriptor=b"x"
        )
        session.add(selfie)
        session.flush()
        for i in range(args.photos):
            keys = [f"photos/{event.id}/{i}.jpg", f"thumbs/{event.id}/{i}.jpg", f"served/{event.id}/{i}.jpg"]
            for key, data in zip(keys, (original, thumb, original), strict=True):
                storage.save(key, data)
            photo = Photo(
                event_id=event.id,
                uploaded_by=org.id,
                filename=f"{i}.jpg",
                original_key=keys[0],
                thumbnail_key=keys[1],
                served_key=keys[2],
                original_format="JPEG",
                size_bytes=len(original),
                width=1,
                height=1,
                status=PhotoStatus.indexed,
            )
            session.add(photo)
            session.flush()
            faces = [
                Face(
                    photo_id=photo.id,
                    event_id=event.id,
                    left=0,
                    top=0,
                    right=1,
                    bottom=1,
                    descriptor=b"d" * 512,
                )
                for _ in range(3)
            ]
            session.add_all(faces)
            session.flush()
            session.add(
                FaceMatch(
                    selfie_id=selfie.id,
                    user_id=guest.id,
                    event_id=event.id,
                    photo_id=photo.id,
                    face_id=faces[0].id,
                    distance=0.3,
                )
            )
        event_id = event.id
    media = scratch / "media"
    size = sum(p.stat().st_size for p in media.rglob("*") if p.is_file())
    print(
        f"made {args.photos} photos, {3 * args.photos} faces, {args.photos} matches, "
        f"{size / 1e6:.1f} MB of files "
        f"in {time.perf_counter() - started:.1f} s ({os.environ['DATABASE_URL'].split(':')[0]})"
    )

    started = time.perf_counter()
    with session_scope() as session:
        photos_service.start_event_erasure(session=session, event=events_service_get(session, event_id))
    hidden = time.perf_counter() - started
    started = time.perf_counter()
    while runner.run_one(photo_jobs.PURGE_JOB, worker_id="bench"):
        pass
    erased = time.perf_counter() - started
    left = sum(p.stat().st_size for p in media.rglob("*") if p.is_file() and "/x.jpg" not in str(p))
    with session_scope() as session:
        rows = {
            name: session.execute(
                text(f"SELECT count(*) FROM {name} WHERE event_id = :e"),  # noqa: S608 - fixed names
                {"e": event_id},
            ).scalar()
            for name in ("photos", "faces", "face_matches", "event_memberships")
        }
        rows["events"] = session.execute(
            text("SELECT count(*) FROM events WHERE id = :e"), {"e": event_id}
        ).scalar()
    print(f"hidden from guests in {hidden * 1000:.0f} ms (the request); erased by the job in {erased:.2f} s")
    print(f"bytes left under DATA_DIR/media for the event: {left}; rows left: {rows}")
    return 0


def events_service_get(session: Session, event_id: int) -> Event:
    from app.events.models import Event

    event = session.get(Event, event_id)
    if event is None:
        raise LookupError(f"event {event_id} is gone")
    return event


if __name__ == "__main__":
    raise SystemExit(main())
