"""The progressive load harness: verdicts from Locust's figures, and real runs against a
real server (QUICK mode), one that passes and one that fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.report import Row, Targets, evaluate
from tests.conftest import truncate_all
from tools.harness.server import free_port
from tools.paths import ROOT

pytestmark = pytest.mark.once


def row(
    name: str, p95: float, requests: int = 100, failures: int = 0, kind: str = "POST", mean: float = 0
) -> Row:
    return Row(kind, name, requests, failures, mean or p95 / 2, p95, p95 * 1.2, 20.0)


def total(rows: list[Row], rps: float = 20.0) -> Row:
    return Row(
        "", "Aggregated", sum(r.requests for r in rows), sum(r.failures for r in rows), 10, 100, 200, rps
    )


def test_a_stage_within_every_target_passes() -> None:
    rows = [
        row("/api/me", 250, kind="GET"),
        row("/api/login", 900),
        row("/api/upload-selfie", 250),
        row("/api/events/[id]/photos", 900),
        row("/api/selfie?wait", 12_000, kind="GET"),
        row("selfie -> verdict", 4000, kind="FLOW"),
        row("selfie -> matches ready", 7000, kind="FLOW"),
    ]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.target_pass and v.original_pass and v.exit_code == 0


def test_a_json_endpoint_over_300_ms_fails_our_target_but_not_the_original_plan() -> None:
    rows = [row("/api/me", 350, kind="GET"), row("/api/upload-selfie", 250)]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.original_pass and not v.target_pass and v.exit_code == 1
    assert v.target_failures == ["GET /api/me: p95 350 ms >= 300 ms"]


def test_register_and_login_have_their_own_target_and_so_do_the_selfie_lines() -> None:
    rows = [
        row("/api/register-with-event-code", 1100),
        row("selfie -> verdict", 5200, kind="FLOW"),
        row("selfie -> matches ready", 7900, kind="FLOW"),
    ]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.target_failures == [
        "POST /api/register-with-event-code: p95 1100 ms >= 1000 ms",
        "FLOW selfie -> verdict: p95 5200 ms >= 5000 ms",
    ]


def test_the_long_poll_is_judged_on_its_failures_only() -> None:
    rows = [row("/api/selfie?wait", 25_000, kind="GET")]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.target_pass and v.original_pass
    rows = [row("/api/selfie?wait", 25_000, kind="GET", failures=1)]
    assert not evaluate(rows, total(rows), 30, Targets()).target_pass


def test_one_failed_request_fails_our_target() -> None:
    rows = [row("/api/login", 100, failures=1)]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.exit_code == 1 and "1 failed requests (allowed: 0)" in v.target_failures


def test_the_original_criteria_include_ten_requests_per_second() -> None:
    rows = [row("/api/login", 100)]
    v = evaluate(rows, total(rows, rps=7.4), 5, Targets())
    assert not v.original_pass and v.target_pass
    assert v.original_failures == ["overall 7.4 req/s <= 10 req/s"]


def test_more_than_five_percent_failures_or_a_p95_over_30_s_is_critical() -> None:
    rows = [row("/api/login", 100, requests=100, failures=6)]
    assert evaluate(rows, total(rows), 30, Targets()).exit_code == 2
    rows = [row("/api/upload-selfie", 31_000)]
    v = evaluate(rows, total(rows), 30, Targets())
    assert v.exit_code == 2 and not v.original_pass


@pytest.fixture
def clean() -> Iterator[None]:
    truncate_all()
    yield
    truncate_all()


def run_harness(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    results = tmp_path / "results"
    environ = {
        **os.environ,
        "START_SERVER": "1",
        "HOST": f"http://127.0.0.1:{free_port()}",
        "RESULTS_DIR": str(results),
        "DATA_DIR": str(tmp_path / "data"),
        "WEB_CONCURRENCY": "4",
        # On a busy machine a selfie may take long: a flow the stage's end cuts off is not a
        # failure, one that gives up early would be.
        "SELFIE_READY_TIMEOUT": "600",
        **env,
    }
    done = subprocess.run(
        ["bash", "test_performance_progressive.sh"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = (results / "summary.md").read_text() if (results / "summary.md").exists() else ""
    return done.returncode, done.stdout + done.stderr, summary


@pytest.mark.slow
def test_quick_mode_against_a_real_server_passes_and_writes_reports(clean: None, tmp_path: Path) -> None:
    # Generous targets: this checks the harness and its verdict on a run that must pass,
    # not this machine's speed while the rest of the suite runs (docs/PERFORMANCE.md does).
    code, output, summary = run_harness(
        tmp_path,
        QUICK="1",
        STAGES="5:12 10:12 30:25",  # QUICK's three stages, shorter: the harness is under test
        TARGET_JSON_P95_MS="10000",
        TARGET_AUTH_P95_MS="10000",
        TARGET_UPLOAD_P95_MS="10000",
        TARGET_SELFIE_P95_MS="10000",
        TARGET_VERDICT_P95_MS="30000",
        TARGET_FLOW_P95_MS="30000",
    )
    assert code == 0, output[-3000:]
    for users in (5, 10, 30):
        assert (tmp_path / "results" / f"results_{users}users.html").stat().st_size > 0
        assert (tmp_path / "results" / f"results_{users}users_stats.csv").exists()
        assert f"## {users} users" in summary
    assert "**Target stage (30 users): PASS.**" in summary
    assert "POST /api/upload-selfie" in output and "FLOW selfie -> matches ready" in output
    assert "FLOW selfie -> verdict" in output
    assert "t= 10s users=" in output  # progress while it runs


@pytest.mark.slow
def test_a_run_that_misses_the_targets_fails(clean: None, tmp_path: Path) -> None:
    # The event is prepared before the stage starts, so even a short burst stage makes
    # requests; a target no request can meet makes it fail.
    code, output, summary = run_harness(tmp_path, STAGES="3:15", BURST="1", TARGET_JSON_P95_MS="0.01")
    assert code == 1, output[-3000:]
    assert "burst (every user of a stage within 1 s)" in summary
    assert "our targets FAIL" in output and "target missed" in output
    assert "**Target stage (3 users): FAIL.**" in summary
