"""Browser tests: Playwright driving Debian's Chromium against a live daphne + worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import ROOT, child_env
from tests.helpers import black_box_mask_png, image_png
from tests.live import daphne_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Where the browser tests write their screenshots: under build/ (ignored by git), so a test
#: run leaves the checkout as it was. ``make screenshots`` points it at docs/screenshots to
#: refresh the docs' pictures.
SCREENSHOTS = Path(os.environ.get("DREAMLAYER_SCREENSHOTS") or ROOT / "build" / "screenshots")


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the browser tests a test process runs one after another (each
    launch, Playwright's driver and Chromium, cost about a second and a half of CPU; each
    test still has a context of its own), ended before any other test: the Playwright loop
    must not outlive the browser tests.

    Playwright's sync API keeps an event loop running in this thread while the tests' own ORM
    calls (and the database flush between tests) stay plain synchronous code, so Django's
    async-safety check is switched off for these modules only (Django documents the switch
    for such tools)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch():
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI the browser tests must run
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_url(django_db_setup, django_db_blocker, celery_worker, _hub_server):
    """daphne serving the test database; jobs go to the session's real Celery worker. Its hub
    is the worker's, the fake one on loopback (an install asks the hub first)."""
    with django_db_blocker.unblock():
        env = child_env(MAX_ACTIVE_GENERATIONS_PER_USER="50", HF_ENDPOINT=_hub_server.url)
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-browser.log") as url:
        yield url


@pytest.fixture
def page(browser, live_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def studio(browser, live_url, user, request):
    """A logged-in studio page at the size the test asks for (desktop unless parametrised
    with ``PHONE``), which fails the test on any script error or refused resource (CSP, 404):
    a bug the user would hit."""
    size = getattr(request, "param", DESKTOP)
    context = browser.new_context(viewport=size, has_touch=size is PHONE, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_url, "alice", "pw-alice-123")
    yield page
    context.close()
    assert errors == []


def screenshot(page, name: str, **kwargs) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path


def log_in(page, live_url: str, username: str, password: str) -> None:
    page.goto(f"{live_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/")


def submit_over_http(live_url: str, key: str, **data) -> str:
    """A job sent with curl's means (multipart, an API key): its id."""
    files = {
        "image": ("in.png", image_png(), "image/png"),
        "mask": ("mask.png", black_box_mask_png(), "image/png"),
    }
    response = requests.post(
        f"{live_url}/api/img2img", files=files, data=data, headers={"X-API-Key": key}, timeout=60
    )
    assert response.status_code in (200, 202), response.text
    return response.json()["id"]
