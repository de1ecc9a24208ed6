"""A person at a browser: sign up, draw a mask, generate with live progress, cancel, download,
history, API keys and the admin — against a live daphne server and a real Celery worker."""

from __future__ import annotations

import io
import json
import os
import subprocess

import numpy as np
import pytest
import requests
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import (
    open_image,
    overlay_alpha,
    photo,
    set_brush,
    settled_box,
    stroke,
    wait_overlay,
)
from tests.images import box_mask, jpeg_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
W, H = 400, 300


@pytest.fixture
def input_png(tmp_path):
    """scikit-image's cat photo, cut to W x H (a real photo, at a size the strokes know)."""
    path, _ = photo(tmp_path, "chelsea")
    Image.open(path).crop((25, 0, 25 + W, H)).save(path)
    return path


def segment_distance(start, end) -> np.ndarray:
    """Distance of every pixel centre of the image to the segment start-end."""
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))


def test_sign_up_draw_generate_watch_progress_download_and_find_it_in_history(
    page, live_url, input_png, tmp_path
):
    page.goto(f"{live_url}/accounts/signup/")
    page.fill("#id_username", "painter")
    page.fill("#id_password1", "a-long-enough-password-1")
    page.fill("#id_password2", "a-long-enough-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/")

    box = open_image(page, input_png)
    one = ((60, 60), (220, 70), 20)  # start, end, brush size
    two = ((100, 180), (320, 230), 40)
    erase = ((140, 30), (140, 100), 30)  # wider than the blur seam, so the gap shows
    set_brush(page, one[2])
    stroke(page, box, one[0], one[1])
    set_brush(page, two[2])
    stroke(page, box, two[0], two[1])
    wait_overlay(page, 210, 205, painted=True)
    page.click("#undo")
    wait_overlay(page, 210, 205, painted=False)
    wait_overlay(page, 140, 65, painted=True)  # stroke one is still there
    page.click("#redo")
    wait_overlay(page, 210, 205, painted=True)
    page.click("#tool-eraser")
    set_brush(page, erase[2])
    stroke(page, box, erase[0], erase[1])
    wait_overlay(page, 140, 65, painted=False)
    page.click("#invert")
    wait_overlay(page, 380, 20, painted=True)
    page.click("#invert")
    wait_overlay(page, 380, 20, painted=False)
    page.wait_for_timeout(400)  # the server's effective-mask overlay

    page.select_option("#engine", "diffusers")
    page.fill("#prompt", "a red rose")
    page.fill("#num_inference_steps", "60")
    page.eval_on_selector(
        "#denoising_strength", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }"
    )
    page.evaluate("""() => {
        window.seenPercents = [];
        new MutationObserver(() => window.seenPercents.push(
            Number(document.getElementById('progress').dataset.percent))
        ).observe(document.getElementById('progress'), {attributes: true});
    }""")
    page.click("#generate")
    page.wait_for_function("() => Number(document.getElementById('progress').dataset.percent) > 5")
    screenshot(page, "studio-progress")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    seen = page.evaluate("window.seenPercents")
    in_progress = sorted({p for p in seen if 0 < p < 100})
    assert len(in_progress) >= 2, seen
    page.wait_for_function("() => document.getElementById('after').complete")
    seed = page.inner_text("#result-seed")
    assert seed.isdigit()
    assert page.is_hidden("#result-warnings")  # the diffusion model followed everything

    with page.expect_download() as download_info:
        page.click("#download")
    downloaded = Image.open(download_info.value.path())
    assert downloaded.size == (W, H) and downloaded.format == "PNG"

    generation = Generation.objects.get(owner__username="painter")
    assert generation.status == "succeeded" and generation.client == "web"
    assert str(generation.seed) == seed
    # The stored mask is the strokes at the image's resolution: paint one, paint two, minus
    # the eraser (undo / redo and the double invert cancel out).
    stored = np.asarray(Image.open(generation.mask.file.open("rb")).convert("L")) > 127
    assert stored.shape == (H, W)
    d1, d2, de = (segment_distance(s, e) - size / 2 for s, e, size in (one, two, erase))
    expected = ((d1 <= 0) | (d2 <= 0)) & ~(de <= 0)
    edge = (np.abs(d1) < 1.5) | (np.abs(d2) < 1.5) | (np.abs(de) < 1.5)  # anti-aliasing
    wrong = (stored != expected) & ~edge
    assert wrong.sum() == 0, f"{wrong.sum()} pixels differ from the strokes"
    assert expected.sum() > 8000

    page.goto(f"{live_url}/history/")
    tile = page.locator(f"[data-generation-id='{generation.pk}']")
    assert tile.locator("[data-status]").inner_text() == "succeeded"
    screenshot(page, "history")
    tile.locator("a").click()
    page.wait_for_selector("text=Parameters")
    loaded = (
        "img => img.complete ? img.naturalWidth"
        " : new Promise((done) => { img.onload = () => done(img.naturalWidth); })"
    )
    assert page.locator("img[alt='Output 0']").evaluate(loaded) == W  # once it has loaded


def test_upload_a_mask_see_thumbnail_and_overlay_and_get_refusals(
    page, live_url, user, input_png, tmp_path
):
    log_in(page, live_url, "alice", "pw-alice-123")
    open_image(page, input_png)
    page.click("#mode-upload")
    assert "white areas are kept, black areas are inpainted" in page.inner_text("#polarity")
    mask_path = tmp_path / "mask.png"
    box_mask(W, H, (100, 100, 199, 199), inpaint_white=False).save(mask_path)
    page.set_input_files("#mask-input", str(mask_path))
    page.wait_for_function("() => document.getElementById('mask-thumb').naturalWidth > 0")
    assert page.evaluate("document.getElementById('mask-thumb').naturalWidth") == 128
    wait_overlay(page, 150, 150, painted=True)
    assert overlay_alpha(page, 20, 20) == 0 and overlay_alpha(page, 300, 250) == 0
    page.click("#mask-invert")
    wait_overlay(page, 150, 150, painted=False)
    assert overlay_alpha(page, 20, 20) > 0
    page.click("#mask-invert")
    wait_overlay(page, 150, 150, painted=True)

    jpeg = tmp_path / "mask.jpg"
    jpeg.write_bytes(jpeg_bytes(box_mask(W, H, (1, 1, 9, 9), inpaint_white=False)))
    page.set_input_files("#mask-input", str(jpeg))
    error = page.locator("[data-error-for=mask]")
    error.wait_for(state="visible")
    assert error.inner_text() == "The mask must be a PNG file."

    big = tmp_path / "big.png"
    buffer = io.BytesIO()
    box_mask(W, H, (1, 1, 9, 9), inpaint_white=False).save(buffer, format="PNG")
    big.write_bytes(buffer.getvalue() + os.urandom(11 * 1024 * 1024))
    page.set_input_files("#mask-input", str(big))
    page.wait_for_function(
        "() => document.querySelector('[data-error-for=mask]').textContent.includes('10')"
    )
    assert "larger than 10 MB" in error.inner_text()
    screenshot(page, "studio-mask-refused")


def test_cancel_a_running_generation(page, live_url, user, input_png):
    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, input_png)
    stroke(page, box, (50, 50), (300, 200))
    page.select_option("#engine", "diffusers")
    page.fill("#prompt", "a cat")
    page.fill("#num_inference_steps", "150")
    page.eval_on_selector(
        "#denoising_strength", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }"
    )
    page.click("#generate")
    page.wait_for_function("() => Number(document.getElementById('progress').dataset.percent) > 0")
    page.click("#cancel")
    page.wait_for_function(
        "() => document.getElementById('progress-text').textContent === 'Cancelled'"
    )
    generation = Generation.objects.get(owner=user)
    assert generation.status == "cancelled"
    assert not generation.images.exists()


def test_a_field_error_appears_next_to_its_field(page, live_url, user, input_png):
    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, input_png)
    stroke(page, box, (50, 50), (100, 100))
    page.select_option("#engine", "diffusers")
    page.fill("#prompt", "a cat")
    page.fill("#num_inference_steps", "500")
    page.click("#generate")
    error = page.locator("[data-error-for=num_inference_steps]")
    error.wait_for(state="visible")
    assert "less than or equal to 150" in error.inner_text()
    assert Generation.objects.count() == 0
    # The classical engine ignores steps: the field is disabled and not sent.
    page.select_option("#engine", "classical")
    assert page.is_disabled("#num_inference_steps")
    assert "does not follow the prompt" in page.inner_text("#classical-note")
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    assert Generation.objects.get().params["num_inference_steps"] == 30
    # The prompt was sent and not followed: the result says so.
    assert page.inner_text("#result-warnings") == "Not used by the classical engine: prompt."


def test_api_keys_page_shows_a_key_once_and_revokes_it(page, live_url, user):
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/accounts/keys/")
    page.fill("#id_name", "draft")
    page.click("#create-key")
    key = page.inner_text("#new-key")
    assert key.startswith("dl_")
    # A reload shows the page again; it does not post the form again (no second key).
    page.reload()
    assert page.locator("#new-key").count() == 0
    assert page.locator("#keys tbody tr").count() == 1
    page.fill("#id_name", "script")
    page.click("#create-key")
    key = page.inner_text("#new-key")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-key")
    page.wait_for_function("() => document.getElementById('copy-status').textContent")
    assert page.inner_text("#copy-status") == "Copied."
    assert page.evaluate("navigator.clipboard.readText()") == key
    # The key's address for clients that cannot send a key (ADR 8), with its own Copy button.
    assert page.inner_text("#new-key-url") == f"{live_url}/k/{key}/"
    page.click("#copy-key-url")
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.includes('/k/'))")
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_url}/k/{key}/"
    screenshot(page, "api-keys", full_page=True)
    page.goto(f"{live_url}/accounts/keys/")
    assert page.locator("#new-key").count() == 0
    assert key not in page.content()
    # The webhook secret: copied by its own button, replaced by another.
    secret = page.inner_text("#webhook-secret")
    assert secret.startswith("whsec_")
    page.click("#webhook-secret-card [data-copy]")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.click("#rotate-webhook-secret")
    page.wait_for_selector("#webhook-secret")
    assert page.inner_text("#webhook-secret") not in ("", secret)

    def curl() -> tuple[int, dict]:
        result = subprocess.run(
            [
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                "-H",
                f"Authorization: Api-Key {key}",
                f"{live_url}/api/generations/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, _, code = result.stdout.rpartition("\n")
        return int(code), json.loads(body)

    code, body = curl()
    assert code == 200 and body["count"] == 0
    row = page.locator("#keys tbody tr", has_text="script")
    row.get_by_role("button", name="Revoke key script").click()
    page.wait_for_selector("text=revoked")
    code, body = curl()
    assert code == 401 and "revoked" in body["message"]


def test_staff_find_the_generation_in_the_admin_with_its_thumbnail(
    page, live_url, api_key, staff_user
):
    from tests.helpers import black_box_mask_png, image_png

    files = {
        "image": ("in.png", image_png(), "image/png"),
        "mask": ("mask.png", black_box_mask_png(), "image/png"),
    }
    response = requests.post(
        f"{live_url}/api/img2img",
        files=files,
        data={"prompt": "bench"},
        headers={"X-API-Key": api_key},
        timeout=60,
    )
    assert response.status_code == 200
    generation_id = response.json()["id"]
    log_in(page, live_url, "staff", "pw-staff-123")
    page.goto(f"{live_url}/admin/inpainting/generation/")
    thumb = page.locator(f"img[src='/api/generations/{generation_id}/thumbnails/0.webp']")
    thumb.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    assert "alice" in page.inner_text("#result_list")
    screenshot(page, "admin-list")
    page.goto(f"{live_url}/admin/inpainting/generation/{generation_id}/change/")
    # The input's thumbnail, linked to the input itself.
    assert page.locator("a[href$='/input.png'] img[src$='/thumbnails/input.webp']").count() == 1


def test_studio_at_phone_width(browser, live_url, user, input_png):
    context = browser.new_context(viewport={"width": 375, "height": 812})
    page = context.new_page()
    try:
        log_in(page, live_url, "alice", "pw-alice-123")
        page.set_input_files("#image-input", str(input_png))
        page.wait_for_selector("#editor:not([hidden])")
        box = page.locator("#overlay-canvas").bounding_box()
        assert box["width"] <= 375
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        for control in page.locator("input:visible, select:visible, textarea:visible").all():
            label = control.evaluate(
                "el => el.labels?.length || el.getAttribute('aria-label') ? 1 : 0"
            )
            assert label, control.evaluate("el => el.outerHTML")
    finally:
        context.close()


def test_outpaint_from_the_studio_without_a_mask(page, live_url, user, input_png):
    log_in(page, live_url, "alice", "pw-alice-123")
    open_image(page, input_png)
    page.fill("#outpaint_right", "64")
    page.fill("#outpaint_top", "16")
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    page.wait_for_function("() => document.getElementById('after').naturalWidth > 0")
    size = page.evaluate(
        "[document.getElementById('after').naturalWidth,"
        " document.getElementById('after').naturalHeight]"
    )
    assert size == [W + 64, H + 16]
    generation = Generation.objects.get(owner=user)
    assert generation.mask is None and generation.params["outpaint"]["right"] == 64


def test_click_to_select_a_region(page, live_url, user, tmp_path):
    from PIL import ImageDraw

    path = tmp_path / "disc.png"
    image = Image.new("RGB", (W, H), (20, 40, 160))
    ImageDraw.Draw(image).ellipse((150, 100, 250, 200), fill=(250, 140, 20))
    image.save(path)
    log_in(page, live_url, "alice", "pw-alice-123")
    open_image(page, path)
    page.click("#tool-select")
    # (the tool's line on what a mask model adds takes room above the canvas: measured after)
    box = settled_box(page)
    page.mouse.click(box["x"] + 200, box["y"] + 150)
    wait_overlay(page, 200, 150, painted=True)
    assert overlay_alpha(page, 20, 20) == 0
    page.click("#undo")
    wait_overlay(page, 200, 150, painted=False)


def test_erase_from_the_studio_removes_with_the_grown_mask(page, live_url, user, input_png):
    """The studio's Erase (issue 84): a stroke, Erase with a dilation, Generate: the remover
    runs (the classical engine here) on the stroke grown by the pixels asked; every pixel
    beyond it is the photo's."""
    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, input_png)
    set_brush(page, 20)
    stroke(page, box, (150, 120), (250, 120))
    wait_overlay(page, 200, 120, painted=True)
    page.check("#erase")
    page.fill("#dilate_pixels", "12")
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    screenshot(page, "studio-erase", full_page=True)
    generation = Generation.objects.get(owner=user)
    assert generation.params["mode"] == "erase" and generation.engine == "classical"
    assert generation.metadata["erase"] == {"remover": "classical", "dilate_pixels": 12}
    with generation.images.get().file.open("rb") as handle:
        out = np.asarray(Image.open(handle).convert("RGB"))
    original = np.asarray(Image.open(input_png).convert("RGB"))
    far = segment_distance((150, 120), (250, 120)) > 10 + 12 + generation.params["mask_blur"] + 2
    assert (out[far] == original[far]).all()
    near = segment_distance((150, 120), (250, 120)) < 8
    assert (out[near] != original[near]).any(axis=-1).mean() > 0.5


def test_erase_from_the_studio_runs_the_erase_adapter_beside_installed_models(
    page, live_url, user, input_png, eraser_library
):
    """With diffusion models in the library (the studio's Model field shows them) and an
    erase adapter, the studio's Erase sends no model and runs the adapter on the [klein]
    model; every pixel beyond the grown stroke is the photo's."""
    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, input_png)
    page.select_option("#engine", "diffusers")  # its Model field: a model chosen
    assert page.is_visible("#model")
    set_brush(page, 20)
    stroke(page, box, (150, 120), (250, 120))
    wait_overlay(page, 200, 120, painted=True)
    page.check("#erase")
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    screenshot(page, "studio-erase-adapter", full_page=True)
    generation = Generation.objects.get(owner=user)
    assert generation.status == "succeeded", generation.error
    assert (generation.engine, generation.metadata["erase"]["adapter"]) == ("diffusers", "erase-v1")
    with generation.images.get().file.open("rb") as handle:
        out = np.asarray(Image.open(handle).convert("RGB"))
    original = np.asarray(Image.open(input_png).convert("RGB"))
    far = segment_distance((150, 120), (250, 120)) > 10 + 10 + generation.params["mask_blur"] + 2
    assert (out[far] == original[far]).all()
