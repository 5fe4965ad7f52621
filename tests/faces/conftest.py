"""Fixtures of the face tests: the devset as the default engine describes it (``devset``), and
for the Azure Face tests (``test_azure*.py``) a fresh fake Face API per test
(``tests.fakes.azure_face``), and ``FACE_PROVIDER=azure`` pointed at it with tiny timeouts and
backoffs, the settings and the provider cache restored afterwards; galleries cut into segments
of 5 faces (``inline_segments``); every devset face stored in the test's event
(``devset_photos``). Only tests that ask for them by name get them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.faces import search
from app.faces.providers import get_face_provider
from app.faces.providers.azure import AzureProvider
from app.faces.providers.local import LocalProvider
from tests.faces.stored import store
from tests.fakes.azure_face import FakeAzureFace
from tools.match_scoring import Indexed, index, load_devset, selfie_probes
from tools.paths import DEVSET


@pytest.fixture(scope="session")
def devset() -> tuple[Indexed, dict[str, np.ndarray]]:
    """The devset's photo faces and its guests' selfie descriptors, by the default engine."""
    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    labelled = load_devset(DEVSET)
    return index(provider.engine, labelled), selfie_probes(provider.engine, labelled)


@pytest.fixture
def fake() -> Iterator[FakeAzureFace]:
    server = FakeAzureFace(train_seconds=0.03).start()
    yield server
    server.stop()


@pytest.fixture
def azure(fake: FakeAzureFace, monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureProvider]:
    """FACE_PROVIDER=azure against the fake, as the workers (``get_face_provider``) see it."""
    settings = get_settings()
    for name, value in {
        "face_provider": "azure",
        "azure_face_endpoint": fake.endpoint,
        "azure_face_key": fake.key,
        "azure_face_timeout": 5.0,
        "azure_face_max_retries": 2,
        "azure_face_circuit_failures": 3,
        "azure_face_circuit_reset_seconds": 0.5,
    }.items():
        monkeypatch.setattr(settings, name, value)
    get_face_provider.cache_clear()
    provider = get_face_provider()
    assert isinstance(provider, AzureProvider)
    provider.calls.backoff_base, provider.calls.backoff_max = 0.01, 0.05
    yield provider
    get_face_provider.cache_clear()


@pytest.fixture
def inline_segments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Segments of 5 faces, written in the calling thread into a folder of this test."""
    monkeypatch.setenv("FACE_INDEX_SEGMENT_FACES", "5")
    monkeypatch.setenv("GALLERY_DIR", str(tmp_path / "galleries"))
    get_settings.cache_clear()
    monkeypatch.setattr(search, "segment_runner", lambda task: task())
    yield tmp_path / "galleries"
    get_settings.cache_clear()


@pytest.fixture
def devset_photos(
    session: Session, event: dict[str, Any], organizer: dict[str, Any], devset: tuple[Indexed, Any]
) -> dict[int, int]:
    """Every devset face stored, committed, in ``event``: devset photo id -> our photo id."""
    indexed, _probes = devset
    return store(session, event["id"], organizer["id"], indexed, range(len(indexed.gallery)))
