"""How fast the face workers drained the selfie queue of a load test, from the database.

    DATABASE_URL=... python -m benchmarks.selfie_drain [--since-minutes 10]

Reads the selfies uploaded in the window: how many, how many got a verdict, the time from
the first upload to the last verdict, and the drain rate while the workers were busy
((verdicts - 1) / (last verdict - first verdict)). Compare it with the selfies/s that
``benchmarks/faces_bench.py`` measures on the same machine.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from sqlalchemy import func, select

from app.core.database import session_scope, utcnow
from app.selfies.models import Selfie


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--since-minutes", type=float, default=10)
    args = parser.parse_args(argv)
    since = utcnow() - timedelta(minutes=args.since_minutes)
    with session_scope() as session:
        uploaded, first_upload = session.execute(
            select(func.count(), func.min(Selfie.created_at)).where(Selfie.created_at >= since)
        ).one()
        checked, first, last = session.execute(
            select(func.count(), func.min(Selfie.checked_at), func.max(Selfie.checked_at)).where(
                Selfie.created_at >= since, Selfie.checked_at.is_not(None)
            )
        ).one()
    if not checked or first is None or last is None or first_upload is None:
        print(f"{uploaded} selfies uploaded, none checked")
        return 1
    busy = (last - first).total_seconds()
    rate = (checked - 1) / busy if busy > 0 else float("nan")
    print(
        f"{uploaded} selfies uploaded, {checked} with a verdict; first upload to last verdict "
        f"{(last - first_upload).total_seconds():.1f} s; drain rate {rate:.1f} selfies/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
