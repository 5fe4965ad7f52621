"""Marathon scale: one event of 1.5 million faces (150,000 photos), 40,000 runners with selfies,
on PostgreSQL, searched as the face workers search it.

How: a scratch PostgreSQL database (dropped and created again: its name must start with
``marathon``), migrated, seeded in bulk (``tools.marathon_seed``): synthetic descriptors around
one identity per runner, and the devset's real photos, described by the real engine, planted
among them. Then, each in a new process as a face worker would be:

1. **A node that never saw the event** (empty ``GALLERY_DIR``): its first search, which reads
   the faces and writes the node's ANN segments (``app.faces.ann``), and the background write
   of the rest.
2. **A new face worker on that node** (the models loaded first, as at start-up): a devset
   person joins and uploads a real selfie; the selfie job (check and match) runs: "ready,
   cold". A second person: "ready, warm". Then 500 runners' searches as the selfie job does
   them (candidates, exact re-ranking from the database, gallery-aware expansion): p50/p95.
   Then real photos indexed by the photo job (faces, then matches with the event's 40,000
   guests and the re-matching of the guests they may concern) into the marathon and into a
   small event of 1,000 faces with the same guests: the per-photo cost at both sizes. Then
   its memory: resident (RSS, with the pages of the mapped segments it touched), proportional
   (PSS: shared pages divided among the processes mapping them) and its peak.
3. **Recall** of the faces found against exact search over every face, within the matching
   radius, for the planted devset selfies and 1,000 runners.

Prints a table and a PASS/FAIL line per target; exits 1 when one is missed.

    .venv/bin/python -m benchmarks.marathon [--faces 1500000] [--runners 40000] [--per-photo 10]
        [--database-url postgresql://postgres@127.0.0.1:5432/marathon_bench]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the app is imported only once the environment is set (settings are read once)
    from app.faces.providers.local import LocalProvider
    from tools.marathon_seed import Marathon
    from tools.match_scoring import LabelledSet

TARGETS = {
    "search_p95_ms": 50.0,
    "selfie_cold_s": 15.0,
    "selfie_warm_s": 3.0,
    "worker_rss_mb": 700.0,
    "recall_devset": 0.995,
    "photo_cost_ratio": 1.10,
}
SELFIE_PEOPLE = ("kit_harington", "alex_lacamoire")
PHOTOS = ("group_obama_biden.jpg", "group_two_people.jpg", "group_kit_harington_rose_leslie.jpg")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=1_500_000)
    parser.add_argument("--runners", type=int, default=40_000)
    parser.add_argument("--per-photo", type=int, default=10)
    parser.add_argument("--small-faces", type=int, default=1_000)
    parser.add_argument("--searches", type=int, default=500)
    parser.add_argument("--recall-probes", type=int, default=1_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/marathon_bench")
    parser.add_argument(
        "--reuse", type=Path, help="the scratch folder of an earlier run: measure again, no seeding"
    )
    return parser.parse_args(argv)


def _recreate_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.core.config import sqlalchemy_url

    target = make_url(sqlalchemy_url(url))
    name = target.database or ""
    if not name.startswith("marathon"):
        raise SystemExit(f"{name}: the scratch database's name must start with 'marathon' (it is dropped)")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _memory() -> dict[str, float]:
    """This process's memory in MB: resident, proportional, peak resident."""
    found: dict[str, float] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Rss", "Pss") and value.strip().endswith("kB"):
            found[key.lower() + "_mb"] = int(value.split()[0]) / 1024
    # VmHWM, not getrusage's ru_maxrss: Linux keeps the latter across exec, so a spawned
    # process would report its parent's peak.
    names = {"VmHWM": "peak_rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in names:
            found[names[key]] = int(value.split()[0]) / 1024
    return found


# --- the processes -------------------------------------------------------------------------------


def _node_bootstrap(event_id: int, out: Any) -> None:
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
        {"bootstrap_first_search_s": first, "bootstrap_total_s": time.perf_counter() - started, **_memory()}
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
            password_hash="x",
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


def _face_worker(args: dict[str, Any], out: Any) -> None:
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
    result: dict[str, Any] = {"after_models": _memory()}
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
    result["after_searches"] = _memory()

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
    result["memory"] = _memory()
    out.put(result)


def _in_process(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


# --- the run -------------------------------------------------------------------------------------


def _exact(marathon: Marathon, probes: np.ndarray, provider: LocalProvider) -> list[set[int]]:
    """The photos each probe matches by exact search over every face of the marathon."""
    from app.faces.matching import Gallery

    gallery = Gallery(capacity=len(marathon.face_ids))
    gallery.append(marathon.face_ids, marathon.photo_ids, marathon.vectors)
    return [
        {
            photo
            for _face, photo, _d in gallery.match(
                probe, threshold=provider.threshold, expand=provider.expand, guard=provider.guard
            )
        }
        for probe in probes
    ]


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    scratch = args.reuse or Path(tempfile.mkdtemp(prefix="marathon-"))
    os.environ.update(
        {
            "DATA_DIR": str(scratch / "data"),
            "DATABASE_URL": args.database_url,
            "GALLERY_DIR": str(scratch / "galleries"),
            "ENVIRONMENT": "test",
            "DB_POOL_SIZE": "2",
        }
    )
    from app.faces.providers import get_face_provider
    from app.faces.providers.local import LocalProvider
    from tools.marathon_seed import load
    from tools.match_scoring import load_devset
    from tools.paths import DEVSET

    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    devset = load_devset(DEVSET)
    saved = scratch / "marathon.npz"
    if args.reuse:
        marathon, seeded_s, boot = load(saved), None, None
        print(f"reusing {scratch} and its database (seeded and segmented by an earlier run)")
    else:
        marathon, seeded_s = _seed(args, scratch, provider, devset)
        boot = _in_process(_node_bootstrap, marathon.event_id)
    run = _measure(args, marathon, provider, devset)
    print(f"(scratch files: {scratch}; again without seeding: --reuse {scratch})")
    return _report(args, marathon, seeded_s, boot, run)


def _seed(
    args: argparse.Namespace, scratch: Path, provider: LocalProvider, devset: LabelledSet
) -> tuple[Marathon, float]:
    """A new scratch database, seeded; the marathon and the seconds the seeding took."""
    from app.core.migrations import upgrade
    from tools.marathon_seed import save, seed
    from tools.match_scoring import index

    (scratch / "data").mkdir(parents=True)
    _recreate_database(args.database_url)
    upgrade()
    indexed = index(provider.engine, devset)
    real = [
        (photo.name, indexed.gallery.vectors[indexed.gallery.photo_ids == n])
        for n, photo in enumerate(devset.photos, start=1)
        if (indexed.gallery.photo_ids == n).any()
    ]
    started = time.perf_counter()
    marathon = seed(
        faces=args.faces,
        runners=args.runners,
        per_photo=args.per_photo,
        small_faces=args.small_faces,
        model=provider.model,
        devset=real,
    )
    seeded_s = time.perf_counter() - started
    save(marathon, scratch / "marathon.npz")
    return marathon, seeded_s


def _measure(
    args: argparse.Namespace, marathon: Marathon, provider: LocalProvider, devset: LabelledSet
) -> dict[str, Any]:
    """The face worker's figures, and recall against exact search."""
    from tools.match_scoring import selfie_probes

    rng = np.random.default_rng(5)
    runners = rng.choice(len(marathon.runner_probes), size=args.searches + args.recall_probes, replace=False)
    devset_probes = np.stack(list(selfie_probes(provider.engine, devset).values()))
    recall_probes = np.vstack([devset_probes, marathon.runner_probes[runners[args.searches :]]])
    worker = _in_process(
        _face_worker,
        {
            "event_id": marathon.event_id,
            "small_event_id": marathon.small_event_id,
            "organizer_id": marathon.organizer_id,
            "search_probes": marathon.runner_probes[runners[: args.searches]],
            "recall_probes": recall_probes,
        },
    )
    truth = _exact(marathon, recall_probes, provider)

    def recall(rows: range) -> tuple[float, int]:
        hits = sum(len(truth[i] & set(worker["found"][i])) for i in rows)
        total = sum(len(truth[i]) for i in rows)
        return hits / max(1, total), total

    planted = {p.photo_id for p in marathon.planted}
    for i in range(len(devset_probes)):  # the target: the planted real photos
        truth.append(truth[i] & planted)
        worker["found"].append(worker["found"][i])
    n = len(recall_probes)
    worker["recall_devset"], worker["devset_photos"] = recall(range(n, n + len(devset_probes)))
    worker["recall_devset_all"], worker["devset_all_photos"] = recall(range(len(devset_probes)))
    worker["recall_runners"], worker["runner_photos"] = recall(range(len(devset_probes), len(recall_probes)))
    return worker


def _report(
    args: argparse.Namespace,
    marathon: Marathon,
    seeded_s: float | None,
    boot: dict[str, Any] | None,
    worker: dict[str, Any],
) -> int:
    search_ms = np.array(worker["search_ms"])
    marathon_photo = float(np.median(worker["photo_s_marathon"]))
    small_photo = float(np.median(worker["photo_s_small"]))
    figures = {
        "search_p50_ms": float(np.percentile(search_ms, 50)),
        "search_p95_ms": float(np.percentile(search_ms, 95)),
        "selfie_cold_s": worker["selfie_cold_s"],
        "selfie_warm_s": worker["selfie_warm_s"],
        "worker_rss_mb": worker["memory"]["peak_rss_mb"],
        "recall_devset": worker["recall_devset"],
        "photo_cost_ratio": marathon_photo / small_photo,
    }
    print(
        f"\n## Marathon: {len(marathon.face_ids):,} faces, {args.runners:,} runners, {os.cpu_count()} CPUs\n"
    )
    print("| figure | value |\n| --- | --- |")
    rows = []
    if seeded_s is not None and boot is not None:
        rows += [
            ("seeding (COPY)", f"{seeded_s:.0f} s"),
            (
                "new node: first search (reads the faces, writes segments)",
                f"{boot['bootstrap_first_search_s']:.1f} s",
            ),
            ("new node: until the last segment is written", f"{boot['bootstrap_total_s']:.1f} s"),
            ("new node: peak memory", f"{boot['peak_rss_mb']:.0f} MB"),
        ]
    memory = worker["memory"]
    rows += [
        ("runner's selfie ready, cold worker (check + match)", f"{figures['selfie_cold_s']:.2f} s"),
        ("runner's selfie ready, warm", f"{figures['selfie_warm_s']:.2f} s"),
        (
            f"selfie search p50 / p95 ({len(search_ms)} runners; expansion, exact re-rank)",
            f"{figures['search_p50_ms']:.1f} / {figures['search_p95_ms']:.1f} ms",
        ),
        ("face worker after loading the models: RSS", f"{worker['after_models']['rss_mb']:.0f} MB"),
        (
            "face worker after the searches: RSS (private + mapped segments) / PSS",
            "{rss_mb:.0f} ({anon_mb:.0f} + {file_mb:.0f}) / {pss_mb:.0f} MB".format(
                **worker["after_searches"]
            ),
        ),
        (
            "face worker after the photo jobs too: RSS (private + mapped segments) / PSS / peak RSS",
            f"{memory['rss_mb']:.0f} ({memory['anon_mb']:.0f} + {memory['file_mb']:.0f}) / "
            f"{memory['pss_mb']:.0f} / {memory['peak_rss_mb']:.0f} MB",
        ),
        (
            "photo job, marathon vs small event (1,000 faces), same guests, median",
            f"{marathon_photo:.2f} s vs {small_photo:.2f} s (x{figures['photo_cost_ratio']:.3f})",
        ),
        (
            "of which: reading the event's guests' selfies (each photo's matching step)",
            "{1:.2f} s for {0:,} selfies".format(*worker["guest_selfies"]),
        ),
        (
            "recall vs exact search: the planted devset photos the devset selfies match",
            f"{worker['recall_devset']:.4f} (of {worker['devset_photos']})",
        ),
        (
            "recall vs exact search: every photo the devset selfies match (synthetic ones too)",
            f"{worker['recall_devset_all']:.4f} (of {worker['devset_all_photos']})",
        ),
        (
            f"recall of the matched photos vs exact search, {args.recall_probes:,} runners",
            f"{worker['recall_runners']:.4f} (of {worker['runner_photos']:,})",
        ),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    failed = 0
    print()
    for key, target in TARGETS.items():
        at_least = key.startswith("recall")
        ok = figures[key] >= target if at_least else figures[key] <= target
        failed += not ok
        bound = f"{'>=' if at_least else '<='} {target}"
        print(f"{'PASS' if ok else 'FAIL'} {key}: {figures[key]:.4g} (target {bound})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
