"""Load test: guests walking the real journey, and an organizer uploading photos meanwhile.

Run it through ``./test_performance_progressive.sh`` (stages, verdicts, reports), or by hand:
``locust -f locustfile.py --host http://127.0.0.1:8000``.

The event comes from ``LOAD_EVENT_FILE`` when it is set (the harness prepares it once, before
its stages, with ``python locustfile.py prepare --host URL --out FILE``); otherwise it is
prepared at test start: log in as the load-test organizer (created with ``python -m app
create-organizer`` when it does not exist yet and the database is local), create an event,
upload the fixture photos in which the selfies' people appear, and wait until they are indexed.

The users are :mod:`loadtest.users` (what every guest does, and the environment variables),
the event :mod:`loadtest.event`; this file is the entry point Locust and the harness run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadtest.users import Guest, Organizer

__all__ = ["Guest", "Organizer"]  # what Locust runs: the User classes of this module


def main(argv: list[str] | None = None) -> int:
    """``python locustfile.py prepare --host URL --out FILE``: the event, once, for every stage."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    # Imported once locust (above) has patched the standard library for gevent, as it must be first.
    from loadtest.event import prepare

    args.out.write_text(json.dumps(prepare(args.host)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
