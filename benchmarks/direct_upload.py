"""Direct-to-bucket upload of 2,000 real photos through the organizer's dashboard, in Chromium,
against the real server (Gunicorn, two web workers) storing in SeaweedFS.

The photos are the fixture and devset JPEGs, each copy made distinct by a JPEG comment segment
naming it (the pixels are untouched, the bytes and so the SHA-256 differ). The first browser
context drops them all; a second one (another laptop: no memory of the first) drops them again.
Prints the figures: photos/s and MB/s of the first drop, the bytes of photos that reached the
web node (its request counter: form uploads; and the bodies the pages sent it), the objects in
the bucket after the second drop, and how long the second drop took to find every duplicate.
One face worker indexes meanwhile (as in production): the figures are the upload's with it.

Every second of a drop, the page is asked for its progress line: how long the answer took
(the page's main thread busy: hashing, drawing) and whether the line moved tell whether the
dashboard stays responsive; the page's JavaScript heap is read at the end. ``--max-side``
re-encodes the copies smaller, so a memory card of 25,000 photos fits a run here.

    .venv/bin/python -m benchmarks.direct_upload [--photos 2000] [--max-side 0]
    .venv/bin/python -m benchmarks.direct_upload --photos 25000 --max-side 640
"""

from __future__ import annotations

import argparse
import io
import re
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image
from playwright.sync_api import Page, Request, expect, sync_playwright

from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import CHROMIUM, CHROMIUM_ARGS
from tools.harness.seaweedfs import running_seaweedfs
from tools.harness.server import free_port, running_server
from tools.paths import DEVSET, FACES
from tools.photos import distinct_copy

OPS_TOKEN = "ops-" + uuid.uuid4().hex
FORM = "POST /api/events/{event_id}/photos"


def distinct_copies(count: int, folder: Path, max_side: int = 0) -> list[Path]:
    """``count`` JPEG files, copies of the real photos each with its own comment segment
    (``max_side``: re-encoded with at most that many pixels on their long side first)."""
    sources = sorted(p for d in (FACES, DEVSET) for p in d.iterdir() if p.suffix.lower() == ".jpg")
    originals = [p.read_bytes() for p in sources]
    if max_side:
        originals = [smaller(data, max_side) for data in originals]
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}-{sources[i % len(sources)].name}"
        path.write_bytes(distinct_copy(originals[i % len(sources)], i))
        paths.append(path)
    return paths


def smaller(data: bytes, max_side: int) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img.thumbnail((max_side, max_side))
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue()


def node_counts(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {OPS_TOKEN}"}).text
    counts: dict[str, float] = {}
    for m in re.finditer(r"^http_requests_total\{(.*)\} ([0-9.e+]+)$", text, re.M):
        endpoint = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))["endpoint"]
        counts[endpoint] = counts.get(endpoint, 0) + float(m.group(2))
    return counts


def log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.locator("#login").fill("boss")
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/organizer")


_PROGRESS = """() => [document.getElementById("dropzone").dataset.state || "",
    document.getElementById("batch-count").textContent]"""


@dataclass
class Drop:
    seconds: float
    answers_ms: list[float]  # the page's answers to the progress question, once a second
    still: int  # seconds in which the progress line did not move
    heap_mb: float  # the page's JavaScript heap at the end (Chromium's performance.memory)


def drop(page: Page, files: list[Path]) -> Drop:
    start = time.perf_counter()
    page.locator("#photo-files").set_input_files([str(p) for p in files])
    answers, still, last = [], 0, ""
    while True:
        asked = time.perf_counter()
        state, line = page.evaluate(_PROGRESS)
        answers.append((time.perf_counter() - asked) * 1000)
        if state == "done":
            break
        still += line == last
        last = line
        time.sleep(1)
    seconds = time.perf_counter() - start
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done")
    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
    return Drop(seconds, answers, still, heap / 2**20)


def report(label: str, result: Drop, photos: int) -> None:
    answers = sorted(result.answers_ms)
    print(
        f"{label}: {result.seconds:.1f} s, {photos / result.seconds:.1f} photos/s; the page answered"
        f" in p50 {answers[len(answers) // 2]:.0f} ms, p95 {answers[int(len(answers) * 0.95)]:.0f} ms,"
        f" max {answers[-1]:.0f} ms ({len(answers)} asks); progress still for {result.still} s;"
        f" JS heap {result.heap_mb:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--max-side", type=int, default=0, help="re-encode the copies this small first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp, running_seaweedfs() as s3:
        files = distinct_copies(args.photos, Path(tmp), args.max_side)
        total = sum(p.stat().st_size for p in files)
        port = free_port()
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        s3.client().create_bucket(Bucket=bucket)
        s3.allow_browser_uploads(bucket, [f"http://127.0.0.1:{port}"])
        env = {
            "PORT": str(port),
            "FACE_WORKERS": "1",
            "OPS_TOKEN": OPS_TOKEN,
            "SECRET_KEY": secrets.token_urlsafe(48),  # a bucket means several nodes: one key
            "STORAGE_URL": f"s3://{bucket}/media",
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region,
        }
        with running_server(workers=2, env=env) as (base, environ), sync_playwright() as pw:
            create_organizer_cli(environ)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            node = urlsplit(base).netloc
            to_node: list[int] = []

            def watch(request: Request) -> None:
                if urlsplit(request.url).netloc == node and request.method in ("POST", "PUT"):
                    to_node.append(len(request.post_data_buffer or b""))

            first = browser.new_context(locale="fr-FR")
            first.on("request", watch)
            page = first.new_page()
            log_in(page, base)
            page.locator("#event-name").fill("Marathon bench")
            page.locator("form[action='/organizer/events'] button[type=submit]").click()
            page.wait_for_url(re.compile(r".*/organizer/events/\d+$"))
            event_url = page.url
            before = node_counts(base)
            first_drop = drop(page, files)
            after = node_counts(base)
            first.close()

            second = browser.new_context(locale="fr-FR")
            page = second.new_page()
            log_in(page, base)
            page.goto(event_url)
            again = drop(page, files)
            second.close()
            browser.close()
            objects = [k for k in s3.keys(bucket) if k.startswith("media/photos/")]
            print(f"photos: {len(files)}, {total / 2**20:.1f} MB")
            report("first drop", first_drop, len(files))
            print(f"first drop: {total / 2**20 / first_drop.seconds:.2f} MB/s")
            print(f"form uploads the web node served: {after.get(FORM, 0) - before.get(FORM, 0):.0f}")
            print(f"bodies the pages sent the web node (JSON: sign, complete): {sum(to_node) / 1024:.1f} KB")
            print(
                "bytes of photos that passed through the web node: 0"
                if after.get(FORM, 0) == before.get(FORM, 0)
                else "bytes of photos that passed through the web node: NOT 0"
            )
            report("second drop (another browser, every photo a duplicate)", again, len(files))
            print(f"objects in the bucket after it: {len(objects)}")


if __name__ == "__main__":
    main()
