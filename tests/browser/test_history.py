"""The history and its detail page in a browser: live badges and thumbnails, a re-run's
detail page that follows the job to its images without a reload, its error on failure,
Delete's confirmation, and pages that load without a 404."""

from __future__ import annotations

import os
import re

import pytest
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import log_in, submit_over_http
from tests.helpers import H, W, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

BADGE = "[data-status]"


def wait_for_badge(page, status: str, root: str = "", timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([selector, status]) => document.querySelector(selector)?.textContent === status",
        arg=[f"{root} {BADGE}".strip(), status],
        timeout=timeout,
    )


def test_history_badges_and_thumbnails_update_live_and_detail_reruns_and_deletes(
    page, live_url, user, api_key, paused_worker
):
    generation_id = submit_over_http(live_url, api_key, prompt="live", wait="false")
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/history/")
    tile = f"[data-generation-id='{generation_id}']"
    # A queued tile says its place in line (and its wait, once a job of its engine ran).
    assert page.inner_text(f"{tile} {BADGE}").startswith("1st in line")
    thumbnail = page.locator(f"{tile} img")
    assert thumbnail.get_attribute("src").endswith("/thumbnails/input.webp")
    page.wait_for_timeout(300)  # the page's websocket is connected
    paused_worker.resume()
    wait_for_badge(page, "succeeded", tile)
    # The tile now shows the first output (the input is 96 x 64 too: compare the address).
    page.wait_for_function(
        "img => img.src.endsWith('/thumbnails/0.webp') && img.complete && img.naturalWidth > 0",
        arg=thumbnail.element_handle(),
    )
    assert thumbnail.evaluate("img => img.naturalWidth") == W

    page.locator(f"{tile} a").click()
    page.wait_for_selector("text=Parameters")
    page.get_by_role("button", name="Re-run").click()
    page.wait_for_url(lambda url: "/history/" in url and generation_id not in url)
    rerun_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    rerun = Generation.objects.get(pk=rerun_id)
    assert rerun.source_id == Generation.objects.get(pk=generation_id).source_id
    wait_for_status(rerun_id)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{live_url}/history/")
    assert "deleted" in page.inner_text("main")
    assert not Generation.objects.filter(pk=rerun_id).exists()
    assert page.locator(f"[data-generation-id='{rerun_id}']").count() == 0


def test_the_detail_page_of_a_rerun_follows_it_to_its_images_without_a_reload(
    page, live_url, user, api_key, paused_worker, tmp_path
):
    paused_worker.resume()
    first = submit_over_http(
        live_url,
        api_key,
        prompt="a red barn at dusk",
        engine="diffusers",
        steps="8",
        denoising_strength="1",
        seed="77",
        wait="false",
    )
    assert wait_for_status(first).status == "succeeded"
    paused_worker.pause()
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/history/{first}/")
    page.get_by_role("button", name="Re-run").click()
    page.wait_for_url(lambda url: "/history/" in url and first not in url)
    rerun_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    assert page.inner_text(BADGE) == "queued"
    assert page.locator("#detail-progress").is_visible()
    page.wait_for_function(  # the socket's snapshot: its place and the wait (a job ran before)
        "() => document.querySelector('[data-progress-text]').textContent"
        ".match(/^1st in line, about \\d+ s$/)"
    )
    assert page.locator("[data-output]").count() == 0
    page.evaluate("""() => {
        window.notReloaded = true;
        window.progressTexts = [];
        const text = document.querySelector('[data-progress-text]');
        new MutationObserver(() => window.progressTexts.push(text.textContent))
            .observe(text, {childList: true, characterData: true, subtree: true});
    }""")
    paused_worker.resume()
    wait_for_badge(page, "succeeded")

    assert page.evaluate("window.notReloaded") is True
    texts = page.evaluate("window.progressTexts")
    steps = [text for text in texts if text.startswith("Step ")]
    assert steps and all(re.fullmatch(r"Step [1-8] / 8( · [\d.]+%)?", text) for text in steps)
    assert "Step 4 / 8 · 50%" in texts, texts
    # After the last step: the result being stored is said, not "100%" (issue 79).
    assert texts.index("Saving the result…") > texts.index("Step 4 / 8 · 50%"), texts
    assert page.locator("#detail-progress").is_hidden()
    assert page.locator("#detail-error").is_hidden()

    rerun = Generation.objects.get(pk=rerun_id)
    assert rerun.status == "succeeded" and rerun.seed == 77
    output = page.locator("[data-output-image]")
    assert output.count() == 1
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=output.element_handle()
    )
    assert output.evaluate("img => img.naturalWidth") == W
    assert output.get_attribute("src") == f"/api/generations/{rerun_id}/thumbnails/0.webp"
    link = page.locator("[data-output-link]").get_attribute("href")
    assert link == f"/api/generations/{rerun_id}/images/0.png"  # the picture at full size
    assert output.get_attribute("alt") == "Output 0"
    caption = page.locator("[data-output] figcaption").inner_text()
    assert caption == f"Output 0 · {W}×{H} · seed 77 · download"
    assert page.inner_text("[data-seed-used]") == "77"
    # The Upscale form of the finished job, without a reload (one output: no output choice).
    assert page.locator("#upscale-form").is_visible()
    assert page.locator("#upscale-index").is_hidden()
    assert page.inner_text("[data-engine]").startswith("diffusers (")
    assert "total -" not in page.inner_text("[data-timings]")

    with page.expect_download() as download_info:
        page.click("[data-output-download]")
    assert download_info.value.suggested_filename == "dreamlayer-a-red-barn-at-dusk-77.png"
    downloaded = Image.open(download_info.value.path())
    assert downloaded.size == (W, H) and downloaded.format == "PNG"

    # The same markup as the server's: a reload renders the same figure.
    live_markup = page.inner_html("[data-output]")
    page.reload()
    assert page.inner_html("[data-output]") == live_markup


def test_the_detail_page_reconnects_when_its_socket_drops(
    page, live_url, user, api_key, paused_worker
):
    generation_id = submit_over_http(live_url, api_key, prompt="again", wait="false")
    page.add_init_script("""(() => {
        const Native = window.WebSocket;
        window.sockets = [];
        window.WebSocket = function (...args) {
            const socket = new Native(...args);
            window.sockets.push(socket);
            return socket;
        };
        window.WebSocket.prototype = Native.prototype;
    })()""")
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/history/{generation_id}/")
    page.wait_for_function(
        "() => window.sockets.length === 1 && window.sockets[0].readyState === 1"
    )
    page.evaluate("window.notReloaded = true; window.sockets[0].close()")  # the network drops
    page.wait_for_function(
        "() => window.sockets.length === 2 && window.sockets[1].readyState === 1"
    )
    paused_worker.resume()
    wait_for_badge(page, "succeeded")
    assert page.locator("[data-output-image]").count() == 1
    assert page.evaluate("window.notReloaded") is True


def test_the_detail_page_shows_a_failure_live(page, live_url, user, api_key, paused_worker):
    generation_id = submit_over_http(live_url, api_key, prompt="doomed", wait="false")
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/history/{generation_id}/")
    page.wait_for_function(
        "() => [...document.images].every(img => img.complete && img.naturalWidth > 0)"
    )
    page.evaluate("window.notReloaded = true")
    os.remove(Generation.objects.get(pk=generation_id).source.file.path)  # the run cannot read it
    paused_worker.resume()
    wait_for_badge(page, "failed")
    error = page.locator("#detail-error")
    assert error.is_visible()
    assert error.inner_text() == Generation.objects.get(pk=generation_id).error
    assert "FileNotFoundError" in error.inner_text()
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#detail-progress").is_hidden()


def test_delete_asks_for_confirmation(page, live_url, user, api_key, celery_worker):
    generation_id = submit_over_http(live_url, api_key, prompt="keep me", wait="false")
    wait_for_status(generation_id)
    log_in(page, live_url, "alice", "pw-alice-123")
    detail = f"{live_url}/history/{generation_id}/"
    page.goto(detail)
    asked = []

    def dismiss(dialog):
        asked.append((dialog.type, dialog.message))
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(500)  # a submitted form would have left the page by now
    assert asked == [("confirm", "Delete this generation and its images? This cannot be undone.")]
    assert page.url == detail
    assert Generation.objects.filter(pk=generation_id).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{live_url}/history/")
    assert not Generation.objects.filter(pk=generation_id).exists()


def test_pages_load_without_a_404_and_with_the_icon(page, live_url, user, api_key):
    generation_id = submit_over_http(live_url, api_key, prompt="icon", wait="false")
    wait_for_status(generation_id)
    missing, icons = [], []

    def record(response):
        if response.status == 404:
            missing.append(response.url)
        if "favicon" in response.url:
            icons.append((response.url, response.status))

    page.on("response", record)
    log_in(page, live_url, "alice", "pw-alice-123")
    for path in ("/", "/history/", f"/history/{generation_id}/", "/api/docs/", "/api/generations/"):
        page.goto(f"{live_url}{path}")
        page.wait_for_load_state("networkidle")
    assert missing == []
    assert (f"{live_url}/static/favicon.svg", 200) in icons  # named by every page of ours
    # Pages that name no icon (JSON opened in a browser): the browser asks for /favicon.ico.
    response = page.request.get(f"{live_url}/favicon.ico")
    assert response.status == 200 and response.url == f"{live_url}/static/favicon.svg"
    assert response.headers["content-type"] == "image/svg+xml"
