"""Where the repository and the fixture photos are, for code that runs from anywhere."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Small, real photographs (``SOURCES.md`` there says where each comes from).
FACES = ROOT / "tests" / "fixtures" / "faces"
#: The labelled devset: ``truth.json`` says who is in each photo.
DEVSET = ROOT / "tests" / "fixtures" / "devset"
