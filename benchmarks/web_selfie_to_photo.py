"""Time from the selfie tap to the first photo on the guest's page, in Chromium on a phone
(Pixel 7 emulation) against the real server (Gunicorn, two web workers, one face worker).

An event with nine indexed photos; ten guests, each registering on the page, then: the tap
(the file chosen in the selfie input), the browser's downscale and upload, the check and
the matching in the face worker, the verdict shown live, "see my photos", and the first
thumbnail drawn. Prints each run and the median.

    .venv/bin/python -m benchmarks.web_selfie_to_photo [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from playwright.sync_api import sync_playwright

from tools.accounts import PASSWORD, create_organizer_cli
from tools.browser import CHROMIUM, CHROMIUM_ARGS, FRENCH, LOCAL_HOSTS, jpeg_file, register_on_page
from tools.harness.server import running_server
from tools.photos import fixture_bytes, gallery_photos


def _prepare(base: str, env: dict[str, str]) -> str:
    create_organizer_cli(env)
    with httpx.Client(base_url=base, timeout=60) as c:
        token = c.post("/api/login", json={"login": "boss", "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        event = c.post("/api/events", json={"name": "Bench"}, headers=headers).json()
        files = [("files", (name, data)) for name, data in gallery_photos().items()]
        c.post(f"/api/events/{event['id']}/photos", files=files, headers=headers).raise_for_status()
        deadline = time.monotonic() + 300
        while c.get(f"/api/events/{event['id']}", headers=headers).json()["photos"]["indexed"] < len(files):
            if time.monotonic() > deadline:
                raise RuntimeError("indexing did not finish")
            time.sleep(0.5)
    return str(event["code"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    selfie = fixture_bytes("obama.jpg")
    env = {"FACE_WORKERS": "1"}
    with running_server(workers=2, env=env) as (base, environ), sync_playwright() as pw:
        code = _prepare(base, environ)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        times = []
        for run in range(args.runs):
            context = browser.new_context(**pw.devices["Pixel 7"], locale="fr-FR")
            context.route(
                "**/*",
                lambda route: (
                    route.continue_() if httpx.URL(route.request.url).host in LOCAL_HOSTS else route.abort()
                ),
            )
            page = context.new_page()
            page.goto(f"{base}/e/{code}")
            register_on_page(page, FRENCH, f"bench{run}")
            started = time.perf_counter()
            page.get_by_label(FRENCH.selfie, exact=True).set_input_files(
                files=[jpeg_file("selfie.jpg", selfie)]
            )
            page.locator("#verdict [data-status=ready] a").click(timeout=120_000)
            page.wait_for_function(
                "() => { const img = document.querySelector('#grid .grid img');"
                " return img && img.complete && img.naturalWidth > 0; }",
                timeout=60_000,
            )
            times.append(time.perf_counter() - started)
            print(f"run {run + 1}: {times[-1] * 1000:.0f} ms", flush=True)
            context.close()
        browser.close()
    print(
        f"selfie tap -> first photo on the page: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms ({len(times)} runs)"
    )


if __name__ == "__main__":
    main()
