"""The accounts tests and benchmarks create: one password for all of them, and an organizer
made the way an operator makes one (``python -m app create-organizer``)."""

from __future__ import annotations

import subprocess
import sys

from tools.paths import ROOT

PASSWORD = "correct horse battery"  # noqa: S105 - scratch accounts on scratch databases


def create_organizer_cli(env: dict[str, str], username: str = "boss") -> None:
    """``python -m app create-organizer`` as an operator runs it, on the database of ``env``."""
    done = subprocess.run(  # noqa: S603 - our own CLI, with arguments we chose
        [
            sys.executable,
            "-m",
            "app",
            "create-organizer",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            "--password",
            PASSWORD,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"create-organizer {username} failed: {done.stderr}")
