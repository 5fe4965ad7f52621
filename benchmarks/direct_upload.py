"""Direct-to-bucket upload of 2,000 real photos through the organizer's dashboard, in Chromium,
against the real server (Gunicorn, two web workers) storing in SeaweedFS.

The photos are the fixture and devset JPEGs, each copy made distinct by a JPEG comment segment
naming it (the pixels are untouched, the bytes and so the SHA-256 differ). The first browser
context drops them all; a second one (another laptop: no memory of the first) drops them again.
Prints the figures: photos/s and MB/s of the first drop, the bytes of photos that reached the
web node (its request counter: form uploads; and the bodies the pages sent it), the objects in
the bucket after the second drop, and how long the second drop took to find every duplicate.
One face worker indexes meanwhile (as in production): the figures are the upload's with it.

    .venv/bin/python -m benchmarks.direct_upload [--photos 2000]
"""

from __future__ import annotations

import argparse
import re
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, Request, expect, sync_playwright

from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import CHROMIUM, CHROMIUM_ARGS
from tools.harness.seaweedfs import running_seaweedfs
from tools.harness.server import free_port, running_server
from tools.paths import DEVSET, FACES
from tools.photos import distinct_copy

OPS_TOKEN = "ops-" + uuid.uuid4().hex
FORM = "POST /api/events/{event_id}/photos"


def distinct_copies(count: int, folder: Path) -> list[Path]:
    """``count`` JPEG files, copies of the real photos each with its own comment segment."""
    sources = sorted(p for d in (FACES, DEVSET) for p in d.iterdir() if p.suffix.lower() == ".jpg")
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}-{sources[i % len(sources)].name}"
        path.write_bytes(distinct_copy(sources[i % len(sources)].read_bytes(), i))
        paths.append(path)
    return paths


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


def drop(page: Page, files: list[Path]) -> float:
    start = time.perf_counter()
    page.locator("#photo-files").set_input_files([str(p) for p in files])
    expect(page.locator("#dropzone")).to_have_attribute("data-state", "done", timeout=3_600_000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp, running_seaweedfs() as s3:
        files = distinct_copies(args.photos, Path(tmp))
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
            seconds = drop(page, files)
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
            print(
                f"first drop: {seconds:.1f} s, {len(files) / seconds:.1f} photos/s,"
                f" {total / 2**20 / seconds:.2f} MB/s"
            )
            print(f"form uploads the web node served: {after.get(FORM, 0) - before.get(FORM, 0):.0f}")
            print(f"bodies the pages sent the web node (JSON: sign, complete): {sum(to_node) / 1024:.1f} KB")
            print(
                "bytes of photos that passed through the web node: 0"
                if after.get(FORM, 0) == before.get(FORM, 0)
                else "bytes of photos that passed through the web node: NOT 0"
            )
            print(
                f"second drop (another browser): {again:.1f} s;"
                f" objects in the bucket after it: {len(objects)}"
            )


if __name__ == "__main__":
    main()
