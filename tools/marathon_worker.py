"""The processes of ``benchmarks/marathon.py``, each started fresh (spawned) once the
environment names the scratch database and folders: a node that never saw the event
(:func:`node_bootstrap`) and a new face worker (:func:`face_worker`), which asks the node's
gallery searcher (``app.worker.searcher_main``, started beside it) as the pool's workers do.
Each puts its figures on ``out`` (a multiprocessing queue). The app is imported inside them:
its settings are read once.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

SELFIE_PEOPLE = ("kit_harington", "alex_lacamoire")
PHOTOS = ("group_obama_biden.jpg", "group_two_people.jpg", "group_kit_harington_rose_leslie.jpg")


def memory(pid: int | str = "self") -> dict[str, float]:
    """A process's memory in MB (this one's by default): resident, proportional, peak
    resident."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss") and value.strip().endswith("kB"):
            found[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    # VmHWM, not getrusage's ru_maxrss: Linux keeps the latter across exec, so a spawned
    # process would report its parent's peak.
    names = {"VmHWM": "peak_rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in names:
            found[names[key]] = int(value.split()[0]) / 1024
    return found


def node_bootstrap(event_id: int, out: Any) -> None:
    """Phase 1: the first search on a node without segments."""
    from app.core.database import session_scope
    from app.faces import galleries, search
    from app.faces.providers import get_face_provider
    from app.faces.providers.local import LocalProvider

    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    probe = np.zeros(128, dtype=np.float32)
    probe[0] = 1.0
    started = time.perf_counter()
    with session_scope() as session:
        search.faces_near(session=session, event_id=event_id, model=provider.model, probe=probe, radius=1.0)
    first = time.perf_counter() - started
    galleries.wait_for_writes()  # the last range, written in the background
    out.put(
        {"bootstrap_first_search_s": first, "bootstrap_total_s": time.perf_counter() - started, **memory()}
    )


def _timed_job(kind: Any) -> float:
    from app.jobs.runner import run_one

    started = time.perf_counter()
    if not run_one(kind, worker_id="marathon-bench"):
        raise RuntimeError(f"no {kind.name} job was waiting")
    return time.perf_counter() - started


def _join_with_selfie(event_ids: list[int], person: str, image: bytes) -> None:
    from app.accounts.models import User
    from app.core import storage
    from app.core.database import session_scope, utcnow
    from app.events.models import EventMembership
    from app.selfies.models import Selfie, SelfieStatus

    tag = f"{person}_{secrets.token_hex(3)}"  # a run with --reuse makes them again
    with session_scope() as session:
        user = User(
            username=tag,
            email=f"{tag}@example.com",
            password_hash="x",  # noqa: S106 - never used to log in
            consent_at=utcnow(),
            consent_version="1",
        )
        session.add(user)
        session.flush()
        session.add_all(EventMembership(user_id=user.id, event_id=event_id) for event_id in event_ids)
        key = f"selfies/{user.id}/{person}.jpg"
        storage.save(key, image)
        session.add(Selfie(user_id=user.id, image_key=key, status=SelfieStatus.pending))


def _add_photo(event_id: int, organizer_id: int, name: str, data: bytes) -> None:
    from app.core import storage
    from app.core.database import session_scope
    from app.photos.models import Photo, PhotoStatus

    with session_scope() as session:
        photo = Photo(
            event_id=event_id,
            uploaded_by=organizer_id,
            filename=name,
            original_key="pending",
            original_format="JPEG",
            size_bytes=len(data),
            width=1,
            height=1,
            status=PhotoStatus.pending,
        )
        session.add(photo)
        session.flush()
        photo.original_key = f"photos/{event_id}/{photo.id}.jpg"
        storage.save(photo.original_key, data)


def face_worker(args: dict[str, Any], out: Any) -> None:
    """Phase 2: a new face worker of the node."""
    from app.core.database import session_scope
    from app.faces import search
    from app.faces.matching import to_blob
    from app.faces.providers import get_face_provider
    from app.faces.providers.local import LocalProvider
    from app.photos.jobs import PHOTO_JOB
    from app.selfies.jobs import SELFIE_JOB
    from tools.match_scoring import load_devset
    from tools.paths import DEVSET

    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    provider.load_models()
    result: dict[str, Any] = {"after_models": memory()}
    devset = load_devset(DEVSET)
    for label, person in zip(("selfie_cold_s", "selfie_warm_s"), SELFIE_PEOPLE, strict=True):
        _join_with_selfie([args["event_id"], args["small_event_id"]], person, devset.selfies[person])
        result[label] = _timed_job(SELFIE_JOB)

    latencies = []
    for probe in args["search_probes"]:
        started = time.perf_counter()
        with session_scope() as session:
            provider.find_photos(
                signature=to_blob(probe),
                image=lambda: b"",
                event_ids=[args["event_id"]],
                faces=search.EventFaces(session=session, model=provider.model),
            )
        latencies.append(time.perf_counter() - started)
    result["search_ms"] = [x * 1000 for x in latencies]
    result["after_searches"] = memory()

    found = []
    with session_scope() as session:
        for probe in args["recall_probes"]:
            matches = provider.find_photos(
                signature=to_blob(probe),
                image=lambda: b"",
                event_ids=[args["event_id"]],
                faces=search.EventFaces(session=session, model=provider.model),
            )
            found.append(sorted(m.photo_id for m in matches))
    result["found"] = found
    result["after_recall"] = memory()

    from app.selfies.service import event_guest_selfies

    reads = []
    for _ in range(5):  # what each new photo's matching step reads: every guest's selfie
        started = time.perf_counter()
        with session_scope() as session:
            guests = len(
                event_guest_selfies(session=session, event_id=args["event_id"], model=provider.model)
            )
        reads.append(time.perf_counter() - started)
    result["guest_selfies"] = (guests, float(np.median(reads)))

    # The same real photos into each event in turn, so that neither gets the colder caches.
    result["photo_s_marathon"], result["photo_s_small"] = [], []
    for name in PHOTOS * 3:
        for label, event_id in (
            ("photo_s_marathon", args["event_id"]),
            ("photo_s_small", args["small_event_id"]),
        ):
            _add_photo(event_id, args["organizer_id"], name, (DEVSET / name).read_bytes())
            result[label].append(_timed_job(PHOTO_JOB))
    result["memory"] = memory()
    out.put(result)
