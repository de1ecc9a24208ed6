"""Select object in the studio (issue 22): with a SAM 2.1 model installed, a click on an
object selects it through the selection worker, the overlay shows it, one Undo takes the
whole object back and Redo brings the same pixels, and a generation runs with exactly what the
overlay showed as its mask; Subject selects the image's subject with a background model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inpainting.models import Generation
from inpainting.services.files import stored_mask
from inpainting.services.library import library_scan
from inpainting.testing.tiny_masks import write_tiny_sam2, write_tiny_u2net
from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import canvas_rgba, open_image

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker", "select_worker"),
]
W, H = 400, 300


def wait_new_overlay(page, ready: str | None) -> np.ndarray:
    """The overlay's tinted pixels once the server's effective mask after ``ready`` is drawn
    and no newer one is on its way (mask blur and grow at 0: the painted mask itself, pixel for
    pixel)."""
    page.wait_for_function(
        "(r) => { const c = document.getElementById('overlay-canvas');"
        " if (c.dataset.ready === r || c.dataset.pending === 'true') return false;"
        " const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < px.length; i += 4) if (px[i]) return true; return false; }",
        arg=ready,
        # The first click loads the selection model in the select worker: on a loaded machine
        # (CI's parallel part) that took more than the page's 20 s.
        timeout=60_000,
    )
    return canvas_rgba(page, "#overlay-canvas")[..., 3].reshape(H, W) > 0


def test_click_an_object_see_it_undo_it_and_generate_with_it(
    page, live_url, user, tmp_path, mask_models_dir
):
    write_tiny_sam2(mask_models_dir / "sam2.1-hiera-toy")
    # This seed's random 3x3 filter happens to tell the orange disc from the blue ground.
    write_tiny_u2net(mask_models_dir / "u2net.onnx", seed=1)
    library_scan()
    path = tmp_path / "circle.png"
    image = Image.new("RGB", (W, H), (20, 40, 160))
    ImageDraw.Draw(image).ellipse((130, 80, 270, 220), fill=(250, 140, 20))
    image.save(path)

    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, path)
    for field in ("#mask_blur", "#mask_grow"):  # the overlay is then the painted mask itself
        page.eval_on_selector(
            field, "el => { el.value = 0; el.dispatchEvent(new Event('change')); }"
        )
    page.click("#tool-select")
    assert page.input_value("#select-method") == "object"
    ready = page.get_attribute("#overlay-canvas", "data-ready")
    page.mouse.click(box["x"] + 200, box["y"] + 150)
    first = wait_new_overlay(page, ready)
    assert 0 < first.sum() < first.size  # the selection, shown
    # A Shift-click takes a point away from the same object: its answer replaces the first.
    ready = page.get_attribute("#overlay-canvas", "data-ready")
    page.keyboard.down("Shift")
    page.mouse.click(box["x"] + 30, box["y"] + 30)
    page.keyboard.up("Shift")
    overlay = wait_new_overlay(page, ready)
    assert not np.array_equal(overlay, first)

    # One undo takes the whole object (both clicks) back; redo brings the same pixels.
    ready = page.get_attribute("#overlay-canvas", "data-ready")
    page.click("#undo")
    page.wait_for_function(
        "() => { const c = document.getElementById('overlay-canvas');"
        " const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " for (let i = 3; i < px.length; i += 4) if (px[i]) return false; return true; }"
    )
    assert page.is_disabled("#undo")
    ready = page.get_attribute("#overlay-canvas", "data-ready")
    page.click("#redo")
    np.testing.assert_array_equal(wait_new_overlay(page, ready), overlay)

    page.fill("#prompt", "a red ball")
    page.click("#generate")
    deadline = time.monotonic() + 120
    generation = None
    while time.monotonic() < deadline:
        generation = Generation.objects.filter(owner__username="alice").order_by("-created_at")
        generation = generation.first()
        if generation is not None and generation.status in Generation.TERMINAL:
            break
        time.sleep(0.5)
    assert generation is not None and generation.status == Generation.Status.SUCCEEDED, (
        generation
        and (
            generation.status,
            generation.error,
            generation.step,
            generation.total_steps,
            generation.engine,
            generation.params,
        )
    )
    sent = np.asarray(stored_mask(generation).convert("L")) == 255  # the studio sends white
    np.testing.assert_array_equal(sent, overlay)  # what the overlay showed is what was sent
    page.wait_for_selector("#result-panel:not([hidden])", timeout=30_000)

    # Subject (a background model): the disc, in one step.
    page.click("#change-image")
    again = tmp_path / "circle-again.png"  # another file: the same one fires no change
    image.save(again)
    open_image(page, again)
    page.click("#tool-select")
    ready = page.get_attribute("#overlay-canvas", "data-ready")
    page.click("#select-subject")
    subject = wait_new_overlay(page, ready)
    assert subject[150, 200] and not subject[10, 10]
    screenshot(page, "studio-select-object")
