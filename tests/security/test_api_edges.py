"""The API's edges as a client meets them (findings 20 and 24 of the second security review):
a 405 names every method of the path, the join link answers JSON to a JSON client, the API
document states the registration rules, the docs page has a content security policy, and the
command line explains an unmigrated database instead of printing a traceback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tools.paths import ROOT


def test_a_405_names_every_method_the_path_serves(client: TestClient) -> None:
    answer = client.put("/api/me")
    assert answer.status_code == 405
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "DELETE"}
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_the_join_link_answers_json_to_a_json_client_and_a_page_to_a_browser(client: TestClient) -> None:
    as_json = client.get("/e/NOSUCHCODE", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json()["error"]["code"] == "event_not_found"
    as_page = client.get("/e/NOSUCHCODE", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert as_page.status_code == 404
    assert as_page.headers["content-type"].startswith("text/html")


def test_the_api_document_states_the_registration_rules(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RegisterIn"]["properties"]
    assert re.fullmatch(schema["username"]["pattern"], "alice.b")
    assert not re.fullmatch(schema["username"]["pattern"], "-x")
    assert schema["password"]["minLength"] == 8
    assert schema["email"]["format"] == "email"


def test_the_docs_page_allows_only_its_own_scripts(client: TestClient) -> None:
    page = client.get("/docs")
    policy = page.headers["content-security-policy"]
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "frame-ancestors 'none'" in policy
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in script_src


def test_create_organizer_on_an_unmigrated_data_dir_says_to_migrate(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": "", "STORAGE_URL": ""}
    command = [sys.executable, "-m", "app", "create-organizer", "--username", "bob"]
    command += ["--email", "bob@example.org", "--password", "plum tractor violet 93"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "python -m app migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_request_the_parser_refuses_gets_the_json_error_shape() -> None:
    from tools.harness.server import running_server
    from tools.harness.slow_clients import connect, read_all

    with running_server(workers=1) as (base, _env):
        sock = connect(base)
        sock.sendall(b"GET /api/health-check?" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_a_truncated_jpeg_selfies_verdict_code_is_documented(
    client: TestClient, event: dict[str, Any], guest_headers: dict[str, str]
) -> None:
    from tests.helpers import selfie_verdict
    from tools.photos import fixture_bytes

    whole = fixture_bytes("obama.jpg")
    state = selfie_verdict(client, guest_headers, whole[: len(whole) // 3])
    assert state["status"] == "rejected"
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SelfieState"]
    assert f"``{state['error']['code']}``" in schema["properties"]["error"]["description"]
