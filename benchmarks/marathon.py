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
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.marathon_worker import face_worker, memory, node_bootstrap

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


def _in_process(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


# --- the run -------------------------------------------------------------------------------------


@contextmanager
def _node_searcher() -> Iterator[int]:
    """The node's gallery searcher, as the face-worker pool runs it, until the block ends;
    its pid."""
    from app.faces import searcher
    from app.worker import searcher_main

    process = multiprocessing.get_context("spawn").Process(target=searcher_main, args=(-1, 0))
    process.start()
    probe = np.zeros(128, dtype=np.float32)
    try:
        while searcher.candidates(event_id=0, model="none", probe=probe, radius=0.5) is None:
            if not process.is_alive():
                raise RuntimeError("the gallery searcher did not start")
            time.sleep(0.1)
        assert process.pid is not None
        yield process.pid
    finally:
        process.terminate()
        process.join(30)


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
        boot = _in_process(node_bootstrap, marathon.event_id)
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
    with _node_searcher() as searcher_pid:
        worker = _in_process(
            face_worker,
            {
                "event_id": marathon.event_id,
                "small_event_id": marathon.small_event_id,
                "organizer_id": marathon.organizer_id,
                "search_probes": marathon.runner_probes[runners[: args.searches]],
                "recall_probes": recall_probes,
            },
        )
        worker["searcher"] = memory(searcher_pid)
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
        "worker_rss_mb": max(worker["memory"]["peak_rss_mb"], worker["searcher"]["peak_rss_mb"]),
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
            "the node's gallery searcher at the end: RSS (private + mapped segments) / PSS / peak RSS",
            "{rss_mb:.0f} ({anon_mb:.0f} + {file_mb:.0f}) / {pss_mb:.0f} / {peak_rss_mb:.0f} MB".format(
                **worker["searcher"]
            ),
        ),
        (
            "face worker after the searches: RSS (private + mapped) / PSS / peak RSS",
            "{rss_mb:.0f} ({anon_mb:.0f} + {file_mb:.0f}) / {pss_mb:.0f} / {peak_rss_mb:.0f} MB".format(
                **worker["after_searches"]
            ),
        ),
        (
            "face worker after the recall searches (1,000 runners in one session): RSS / peak RSS",
            "{rss_mb:.0f} / {peak_rss_mb:.0f} MB".format(**worker["after_recall"]),
        ),
        (
            "face worker after the photo jobs too: RSS (private + mapped) / PSS / peak RSS",
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
