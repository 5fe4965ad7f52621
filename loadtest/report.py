"""Verdicts of a load-test stage, from Locust's CSV: the table printed by
``test_performance_progressive.sh`` and the markdown summary it writes.

    python -m loadtest.report --csv results/x/results_30users --users 30 \
        [--summary results/x/summary.md] [--target]

Exit code: 0 when the stage meets our targets, 1 when it misses them, 2 when it is critical
(the original plan's "critique" column: more than 5 % failures or a p95 over 30 s).

Two sets of criteria are applied to every endpoint:
- the original plan's: mean < 5 s, p95 < 10 s, p99 < 15 s, failures < 1 %, and > 10 req/s overall;
- ours: JSON endpoints p95 < 300 ms, register and login (an argon2 hash each) < 1 s,
  upload-selfie (accepted at once, checked later) < 300 ms, photo uploads < 1 s,
  ``selfie -> verdict`` < 5 s, ``selfie -> matches ready`` < 8 s, no failure at all. The
  long-poll ``GET /api/selfie?wait`` waits on purpose: only its failures count.
  ``TARGET_JSON_P95_MS``, ``TARGET_AUTH_P95_MS``, ``TARGET_SELFIE_P95_MS``,
  ``TARGET_UPLOAD_P95_MS``, ``TARGET_VERDICT_P95_MS``, ``TARGET_FLOW_P95_MS`` and
  ``TARGET_MAX_FAILURES`` override them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

SELFIE_UPLOAD = "/api/upload-selfie"
UPLOADS = ("/api/events/[id]/photos",)
AUTH = ("/api/register-with-event-code", "/api/login")
WAITS = ("/api/selfie?wait",)
VERDICT = "selfie -> verdict"
FLOW = "selfie -> matches ready"


@dataclass(frozen=True)
class Row:
    type: str
    name: str
    requests: int
    failures: int
    mean_ms: float
    p95_ms: float
    p99_ms: float
    rps: float

    @property
    def failure_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    @property
    def kind(self) -> str:
        if self.name == FLOW:
            return "flow"
        if self.name == VERDICT:
            return "verdict"
        if self.name in WAITS:
            return "wait"
        if self.name in AUTH:
            return "auth"
        if self.name == SELFIE_UPLOAD:
            return "selfie"
        return "upload" if self.name in UPLOADS else "json"


@dataclass(frozen=True)
class Targets:
    json_p95_ms: float = 300
    auth_p95_ms: float = 1000
    selfie_p95_ms: float = 300
    upload_p95_ms: float = 1000
    verdict_p95_ms: float = 5000
    flow_p95_ms: float = 8000
    max_failures: int = 0

    @classmethod
    def from_env(cls) -> Targets:
        d = cls()
        return cls(
            json_p95_ms=float(os.environ.get("TARGET_JSON_P95_MS", d.json_p95_ms)),
            auth_p95_ms=float(os.environ.get("TARGET_AUTH_P95_MS", d.auth_p95_ms)),
            selfie_p95_ms=float(os.environ.get("TARGET_SELFIE_P95_MS", d.selfie_p95_ms)),
            upload_p95_ms=float(os.environ.get("TARGET_UPLOAD_P95_MS", d.upload_p95_ms)),
            verdict_p95_ms=float(os.environ.get("TARGET_VERDICT_P95_MS", d.verdict_p95_ms)),
            flow_p95_ms=float(os.environ.get("TARGET_FLOW_P95_MS", d.flow_p95_ms)),
            max_failures=int(os.environ.get("TARGET_MAX_FAILURES", d.max_failures)),
        )

    def p95_limit(self, row: Row) -> float:
        return {
            "json": self.json_p95_ms,
            "auth": self.auth_p95_ms,
            "selfie": self.selfie_p95_ms,
            "upload": self.upload_p95_ms,
            "verdict": self.verdict_p95_ms,
            "flow": self.flow_p95_ms,
            "wait": float("inf"),
        }[row.kind]


@dataclass
class Verdict:
    users: int
    rows: list[Row]
    total: Row
    original_failures: list[str] = field(default_factory=list)
    target_failures: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)

    @property
    def original_pass(self) -> bool:
        return not self.original_failures

    @property
    def target_pass(self) -> bool:
        return not self.target_failures and not self.critical

    @property
    def exit_code(self) -> int:
        return 2 if self.critical else (0 if self.target_pass else 1)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def read_stats(path: Path) -> tuple[list[Row], Row]:
    rows = []
    total = None
    with path.open() as f:
        for r in csv.DictReader(f):
            row = Row(
                type=r["Type"],
                name=r["Name"],
                requests=int(r["Request Count"]),
                failures=int(r["Failure Count"]),
                mean_ms=_number(r["Average Response Time"]),
                p95_ms=_number(r["95%"]),
                p99_ms=_number(r["99%"]),
                rps=_number(r["Requests/s"]),
            )
            if r["Name"] == "Aggregated":
                total = row
            else:
                rows.append(row)
    if total is None:
        raise ValueError(f"{path}: no Aggregated row (did the stage run?)")
    return rows, total


def evaluate(rows: list[Row], total: Row, users: int, targets: Targets) -> Verdict:
    v = Verdict(users=users, rows=rows, total=total)
    if not rows or total.requests == 0:
        v.critical.append("no request was made")
    for row in rows:
        where = f"{row.type} {row.name}"
        waits = row.kind == "wait"  # a long-poll is slow on purpose: only its failures count
        for ok, what in (
            (waits or row.mean_ms < 5000, f"mean {row.mean_ms:.0f} ms >= 5 s"),
            (waits or row.p95_ms < 10000, f"p95 {row.p95_ms:.0f} ms >= 10 s"),
            (waits or row.p99_ms < 15000, f"p99 {row.p99_ms:.0f} ms >= 15 s"),
            (row.failure_pct < 1, f"failures {row.failure_pct:.2f} % >= 1 %"),
        ):
            if not ok:
                v.original_failures.append(f"{where}: {what}")
        limit = targets.p95_limit(row)
        if row.p95_ms >= limit:
            v.target_failures.append(f"{where}: p95 {row.p95_ms:.0f} ms >= {limit:.0f} ms")
        if row.p95_ms > 30000 and row.kind != "wait":
            v.critical.append(f"{where}: p95 {row.p95_ms:.0f} ms > 30 s")
    if total.rps <= 10:
        v.original_failures.append(f"overall {total.rps:.1f} req/s <= 10 req/s")
    if total.failures > targets.max_failures:
        v.target_failures.append(f"{total.failures} failed requests (allowed: {targets.max_failures})")
    if total.failure_pct > 5:
        v.critical.append(f"{total.failure_pct:.1f} % of requests failed (> 5 %)")
    return v


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(v: Verdict, targets: Targets) -> str:
    head = (
        f"{'endpoint':44} {'requests':>8} {'fail %':>7} {'mean':>7} {'p95':>7} {'p99':>7} {'req/s':>7}"
        f"  {'original':8} {'target':8}"
    )
    lines = [head, "-" * len(head)]
    for row in [*sorted(v.rows, key=lambda r: r.name), v.total]:
        fast = row.kind == "wait" or (row.mean_ms < 5000 and row.p95_ms < 10000 and row.p99_ms < 15000)
        original = fast and row.failure_pct < 1
        if row is v.total:
            original = original and row.rps > 10
            target = row.failures <= targets.max_failures
        else:
            target = row.p95_ms < targets.p95_limit(row) and row.failures <= targets.max_failures
        name = f"{row.type} {row.name}" if row is not v.total else "ALL"
        lines.append(
            f"{name[:44]:44} {row.requests:>8} {row.failure_pct:>7.2f} {row.mean_ms:>7.0f} {row.p95_ms:>7.0f}"
            f" {row.p99_ms:>7.0f} {row.rps:>7.1f}  {_mark(original):8} {_mark(target):8}"
        )
    verdict = "CRITICAL" if v.critical else _mark(v.target_pass)
    lines.append(f"stage {v.users} users: original criteria {_mark(v.original_pass)}, our targets {verdict}")
    lines += [f"  critical: {c}" for c in v.critical]
    lines += [f"  target missed: {t}" for t in v.target_failures]
    lines += [f"  original criterion missed: {o}" for o in v.original_failures]
    return "\n".join(lines)


def markdown(v: Verdict, targets: Targets) -> str:
    out = [
        f"## {v.users} users",
        "",
        "| endpoint | requests | failures % | mean ms | p95 ms | p99 ms | req/s | original | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for line in table(v, targets).splitlines()[2 : 2 + len(v.rows) + 1]:
        cells = line[:44].strip(), *line[44:].split()
        out.append("| " + " | ".join(cells) + " |")
    verdict = "CRITICAL" if v.critical else _mark(v.target_pass)
    out += ["", f"Original criteria: **{_mark(v.original_pass)}**; our targets: **{verdict}**."]
    out += [f"- {x}" for x in v.critical + v.target_failures + v.original_failures]
    return "\n".join(out) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", required=True, help="the --csv prefix given to locust")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--summary", help="markdown file to append this stage to")
    args = parser.parse_args(argv)
    targets = Targets.from_env()
    try:
        rows, total = read_stats(Path(f"{args.csv}_stats.csv"))
    except (OSError, ValueError) as exc:
        print(f"no results for the {args.users}-user stage: {exc}", file=sys.stderr)
        return 2
    v = evaluate(rows, total, args.users, targets)
    print(table(v, targets))
    if args.summary:
        with open(args.summary, "a") as f:
            f.write(markdown(v, targets))
    return v.exit_code


if __name__ == "__main__":
    sys.exit(main())
