"""How fast can one client guess event codes (or passwords)? Real Gunicorn on a scratch
SQLite database, one client on loopback sending wrong codes (then wrong passwords) for
``--seconds``; printed: guesses answered per second, and how many of them were real answers
(404 / 401) rather than 429 refusals. Run once with the throttles off, once on:

    .venv/bin/python -m benchmarks.code_guessing --seconds 10
"""

from __future__ import annotations

import argparse
import secrets
import time

import httpx

from app.events.service import CODE_ALPHABET
from tools.harness.server import running_server


def _hammer(base: str, seconds: float, path: str, body: dict[str, str] | None) -> tuple[int, int, int]:
    answered = refused = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline:
            payload = body or {"code": "GUESS-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))}
            status = client.post(path, json=payload).status_code
            answered += status in (401, 404)
            refused += status == 429
    return answered, refused, answered + refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    for throttles in ("false", "true"):
        env = {"EMBEDDED_FACE_WORKERS": "false", "THROTTLES_ENABLED": throttles, "DATABASE_URL": ""}
        with running_server(workers=1, env=env) as (base, _):
            for what, path, body in (
                ("event codes", "/api/check-event-code", None),
                ("passwords", "/api/login", {"login": "someone", "password": "a wrong guess"}),
            ):
                answered, refused, total = _hammer(base, args.seconds, path, body)
                print(
                    f"throttles {'on ' if throttles == 'true' else 'off'} {what:11}: "
                    f"{total / args.seconds:7.1f} requests/s, "
                    f"{answered / args.seconds:7.2f} guesses/s answered, "
                    f"{refused} refused (429) in {args.seconds:g} s"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
