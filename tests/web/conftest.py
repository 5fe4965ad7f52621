"""Browser tests: pytest-playwright driving Debian's Chromium (``/usr/bin/chromium``, never a
browser Playwright downloads) against the real server, Gunicorn with its face worker.

Every request the pages make to anything but the local server is aborted and recorded, and a
test fails if there was one. Screenshots go to ``build/screenshots`` (a few are committed in
``docs/screenshots``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

from tests.conftest import IS_POSTGRES
from tools.browser import CHROMIUM, CHROMIUM_ARGS, LOCAL_HOSTS
from tools.harness.server import running_server
from tools.paths import ROOT

SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, str]]]:
    """Gunicorn with two web workers and one face worker, on this test run's database."""
    with running_server(workers=2, env={"FACE_WORKERS": "1", "SELFIE_CHANGES_PER_DAY": "20"}) as running:
        yield running


class Offsite:
    """The requests aborted because they were for another host than the local server."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.contexts: list[BrowserContext] = []

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.urls.append(route.request.url)
            route.abort()


@pytest.fixture
def offsite() -> Iterator[Offsite]:
    blocked = Offsite()
    yield blocked
    for context in blocked.contexts:  # closed even when a test fails: no stream left open
        context.close()
    assert blocked.urls == [], f"the pages asked for other hosts: {blocked.urls}"


def new_context(browser: Browser, offsite: Offsite, **options: Any) -> BrowserContext:
    context = browser.new_context(accept_downloads=True, **options)
    context.route("**/*", offsite.route)
    offsite.contexts.append(context)
    context.set_default_timeout(30_000)
    return context


def phone(playwright: Playwright, locale: str) -> dict[str, Any]:
    return {**playwright.devices["Pixel 7"], "locale": locale}


_axe = Axe()


def audit(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    results = _axe.run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{page.url}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in bad
    )


# The visible targets smaller than 24 x 24 CSS px (WCAG 2.2, SC 2.5.8), but a link inside a
# sentence (its parent has text of its own), which the SC exempts. A label counts when it is a
# checkbox's or a radio's (a click on it ticks the box).
_SMALL_TARGETS = """() => [...document.querySelectorAll(
    'a[href], button, input[type=checkbox], input[type=radio], input[type=submit], summary, label[for]')]
  .filter((e) => {
    if (e.matches('label')) {
      const input = document.getElementById(e.htmlFor);
      if (!input || !['checkbox', 'radio'].includes(input.type)) return false;
    }
    const box = e.getBoundingClientRect();
    if (getComputedStyle(e).visibility === 'hidden' || box.width <= 1 || box.height <= 1 || box.right <= 0) {
      return false;  // not shown: hidden, visually hidden, or off screen until focused (the skip link)
    }
    const inSentence = e.matches('a') && [...e.parentElement.childNodes]
      .some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '');
    return !inSentence && (box.width < 24 || box.height < 24);
  })
  .map((e) => {
    const box = e.getBoundingClientRect();
    const name = (e.textContent.trim() || e.getAttribute('aria-label') || e.name || '').slice(0, 30);
    return `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${name}" `
      + `${Math.round(box.width * 10) / 10}x${Math.round(box.height * 10) / 10}`;
  })"""


def small_targets(page: Page) -> list[str]:
    """The interactive elements shown smaller than 24 x 24 CSS px, described (none is the rule)."""
    return list(page.evaluate(_SMALL_TARGETS))


#: Bytes a page may transfer on a first load, images aside.
PAGE_BUDGET = 150 * 1024
_TRANSFERRED = """() => {
    const entries = [
        ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource'),
    ];
    return entries.filter((e) => e.initiatorType !== 'img').reduce((sum, e) => sum + e.transferSize, 0);
}"""


def transferred(page: Page) -> int:
    """The bytes the page transferred so far (the document and what it loaded), images aside."""
    return int(page.evaluate(_TRANSFERRED))


def first_load_weight(context: BrowserContext, url: str) -> int:
    """The bytes ``url`` transfers when loaded with nothing cached, images aside (in a new tab
    of ``context``: its cookies, no cache)."""
    fresh = context.new_page()
    fresh.route(
        "**/*", lambda route: route.fallback(headers={**route.request.headers, "cache-control": "no-cache"})
    )
    fresh.goto(url, wait_until="load")
    weight = transferred(fresh)
    fresh.close()
    return weight


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots() -> None:
    # Not on PostgreSQL: that pass takes no screenshot (the browser tests are marked `once`),
    # and runs beside the SQLite pass, which writes them.
    if not IS_POSTGRES:
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)
