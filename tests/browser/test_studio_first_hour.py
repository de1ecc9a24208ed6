"""The studio's first hour, round three (issue 79): a picture over the server's pixel limit is
refused when it is loaded (with a copy that fits offered), not after painting at Generate; a
job is never silent: its upload's progress, then "Saving the result" after the last step; the
Select tool says what a click-to-select needs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.browser.helpers import (
    in_window,
    open_image,
    photo,
    set_brush,
    stroke,
    wait_overlay_settled,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def gradient_png(path, width: int, height: int) -> None:
    """A picture of ``width`` x ``height``: red grows to the right, green downwards (a smooth
    gradient: a 6000 x 4000 PNG of it is half a megabyte, well under the byte limit)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))]
        + [np.full((height, width), 128, np.float32)],
        axis=-1,
    )
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def test_a_6000x4000_photo_is_refused_when_loaded_and_a_copy_that_fits_is_offered(studio, tmp_path):
    limit = settings.UPLOAD_MAX_PIXELS
    assert 6000 * 4000 > limit  # the server's limit, the one the page was handed
    path = tmp_path / "big.png"
    gradient_png(path, 6000, 4000)
    studio.set_input_files("#image-input", str(path))
    notice = studio.locator("#image-too-large")
    notice.wait_for(state="visible")
    text = notice.inner_text()
    assert "6000 × 4000 pixels" in text and "24,000,000 in all" in text, text
    assert f"the limit is {limit:,} pixels in all" in text, text
    screenshot(studio, "studio-too-large")
    # Nothing opened: no canvas to paint on, and Generate has no image to send.
    assert studio.is_hidden("#editor") and studio.is_visible("#dropzone")
    assert studio.evaluate("document.getElementById('image-canvas').width") in (0, 300)
    studio.click("#generate")
    assert studio.inner_text("[data-error-for=image]") == "Choose an image first."
    assert not Generation.objects.exists()

    # The copy offered: the largest of the picture's shape under the limit, opened at once.
    scale = math.sqrt(limit / (6000 * 4000))
    width, height = math.floor(6000 * scale), math.floor(4000 * scale)
    button = studio.locator("#downscale-image")
    assert button.inner_text() == f"Use a copy at {width} × {height}"
    button.click()
    studio.wait_for_selector("#editor:not([hidden])", timeout=60_000)
    assert studio.is_hidden("#image-too-large")
    size = studio.eval_on_selector("#image-canvas", "c => [c.width, c.height]")
    assert size == [width, height] and width * height <= limit
    corners = studio.evaluate(
        """([w, h]) => { const c = document.getElementById('image-canvas').getContext('2d');
        return [c.getImageData(2, 2, 1, 1).data.slice(0, 3), c.getImageData(w - 3, h - 3, 1, 1)
        .data.slice(0, 3)].map((p) => Array.from(p)); }""",
        [width, height],
    )
    assert corners[0][0] < 8 and corners[0][1] < 8  # the gradient's dark corner, top left
    assert corners[1][0] > 247 and corners[1][1] > 247  # its bright one, bottom right


#: Every text the progress line shows, in order (recorded by the page as it changes).
RECORD_PROGRESS = """() => {
    window.progressTexts = [];
    const line = document.getElementById('progress-text');
    new MutationObserver(() => window.progressTexts.push(line.textContent))
        .observe(line, {childList: true, characterData: true, subtree: true});
}"""


def test_a_jobs_upload_and_its_saving_are_said_not_silent(studio, tmp_path):
    """A phone photo on a slow uplink: the progress line counts the bytes sent, then says the
    result is being saved after the last step (not "100% · about 0 s left")."""
    path, _ = photo(tmp_path, "coffee")
    big = tmp_path / "coffee-large.png"
    Image.open(path).resize((1500, 1000), Image.LANCZOS).save(big)
    size = big.stat().st_size
    assert size > 1_000_000, size
    box = open_image(studio, big, zoom=None)
    set_brush(studio, 40)
    stroke(
        studio,
        box,
        (box["width"] * 0.4, box["height"] * 0.4),
        (box["width"] * 0.6, box["height"] * 0.5),
    )
    wait_overlay_settled(studio)
    # A slow uplink (DevTools' network throttling): the upload takes seconds.
    network = studio.context.new_cdp_session(studio)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 400_000},
    )
    # Cancel while it is sent: nothing is queued.
    sending = studio.locator("#progress-text", has_text="Sending the pictures ·")
    studio.click("#generate")
    sending.wait_for()
    studio.click("#cancel")
    message = studio.locator("#studio-message", has_text="Cancelled: the job was not sent.")
    message.wait_for()
    assert studio.is_hidden("#progress-panel") and studio.is_enabled("#generate")
    studio.wait_for_timeout(500)
    assert not Generation.objects.exists()

    studio.evaluate(RECORD_PROGRESS)
    studio.click("#generate")
    sending.wait_for()
    assert studio.is_visible("#progress-panel") and studio.is_enabled("#cancel")
    screenshot(studio, "studio-uploading")
    studio.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    texts = studio.evaluate("window.progressTexts")
    uploads = [
        re.fullmatch(r"Sending the pictures · (\d+)% · ([\d.]+) of ([\d.]+) MB", t) for t in texts
    ]
    percents = [int(m[1]) for m in uploads if m]
    assert len(percents) >= 2 and percents == sorted(percents), texts
    assert any(0 < p < 100 for p in percents), texts
    (total,) = {float(m[3]) for m in uploads if m}  # the whole request: the photo and the mask
    assert size / 1048576 - 0.05 <= total <= size / 1048576 + 0.5, (size, texts)
    saving = [i for i, t in enumerate(texts) if t.startswith("Saving the result")]
    steps = [i for i, t in enumerate(texts) if t.startswith("Step ")]
    assert saving and (not steps or max(steps) < min(saving)), texts
    assert not any("100%" in t and "s left" in t for t in texts), texts
    assert texts.index("Queued") > max(i for i, m in enumerate(uploads) if m), texts


def test_the_select_tool_says_what_click_to_select_needs(studio, browser, live_url, tmp_path):
    """No selection model here: choosing Select says, in the tool, that a click needs a mask
    model (by colour works meanwhile); staff who may install get the link to Model installs."""
    path, _ = photo(tmp_path, "coffee")
    open_image(studio, path, zoom=None)
    needs = studio.locator("#select-more")
    assert needs.is_hidden()
    studio.click("#tool-select")
    assert needs.is_visible() and in_window(studio, needs.bounding_box())
    text = needs.inner_text()
    assert "Click to select an object" in text and "needs a mask model, SAM 2.1 or SAM 3" in text
    assert "Select works by colour" in text and "An administrator can install one." in text
    assert "data/models" not in text and studio.locator("#select-install").count() == 0
    assert studio.locator("#select-method option").all_inner_texts() == ["colour"]
    studio.click("#tool-brush")
    assert needs.is_hidden()

    get_user_model().objects.create_superuser("root", password="pw-root-123456")
    context = browser.new_context(viewport=PHONE, has_touch=True)
    staff = context.new_page()
    try:
        log_in(staff, live_url, "root", "pw-root-123456")
        open_image(staff, path, zoom=None)
        staff.click("#tool-select")
        link = staff.locator("#select-install")
        link.scroll_into_view_if_needed()
        assert link.is_visible() and in_window(staff, link.bounding_box())
        screenshot(staff, "studio-select-needs-phone")
        link.click()
        staff.wait_for_url(f"{live_url}/admin/inpainting/modelinstall/")
        assert "sam2.1" in staff.inner_text("body").lower()  # the starter list's mask models
    finally:
        context.close()
