"""A photo upload is streamed to storage: the web worker that receives a 25 MB file never
holds it in memory (its peak resident size, read by the kernel, does not grow by the file)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import ops_headers
from tools.accounts import PASSWORD, create_organizer_cli
from tools.harness.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.once]  # a real server


def _peak_mib(pid: int) -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) // 1024


def test_a_25_mb_photo_goes_to_storage_without_being_held_in_the_workers_memory() -> None:
    noise = np.random.default_rng(7).integers(0, 255, (3000, 3000, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "PNG", compress_level=0)
    photo = out.getvalue()
    assert len(photo) > 25 * 1024 * 1024
    with running_server(workers=1, env={"EMBEDDED_FACE_WORKERS": "false"}) as (base, env):
        create_organizer_cli(env)
        with httpx.Client(base_url=base, timeout=120) as c:
            token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
            org = {"Authorization": f"Bearer {token}"}
            event = c.post("/api/events", json={"name": "Big"}, headers=org).json()
            stats = c.get("/api/stats", headers=ops_headers(env["DATA_DIR"])).json()
            (worker,) = [w["pid"] for w in stats["requests"]["workers"] if w["alive"]]
            before = _peak_mib(worker)
            r = c.post(
                f"/api/events/{event['id']}/photos", files=[("files", ("big.png", photo))], headers=org
            )
            assert r.status_code == 202 and len(r.json()["accepted"]) == 1, r.text
            assert _peak_mib(worker) - before < 10  # the whole file in memory would add 25+
