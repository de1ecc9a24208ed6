"""The soft brush and the reference slot in the studio (issue 38): a brush of hardness 0 paints
a stroke that fades to its rim; the overlay shows the fading strength; the mask sent and stored
keeps the gray values there; with "Soft inpainting" on, the job regenerates them in part. A
picture dropped on the IP-Adapter's reference slot goes with the job."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from inpainting.models import Generation
from inpainting.services.library import library_scan
from inpainting.testing.tiny_ip_adapter import write_tiny_ip_adapter
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot
from tests.browser.helpers import open_image, overlay_alpha, photo, set_brush, stroke
from tests.images import gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

ROW = 150  # the stroke's row, from x 100 to 300, in image pixels (the view is at 100%)


def set_slider(page, name: str, value: int) -> None:
    page.eval_on_selector(
        f"#brush-{name}",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
        value,
    )
    assert page.inner_text(f"#brush-{name}-value") == str(value)


def test_a_soft_brush_paints_gray_the_overlay_shows_it_and_the_job_keeps_it(
    page, live_url, user, tmp_path
):
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(page, path)
    set_brush(page, 40)
    set_slider(page, "hardness", 0)
    stroke(page, box, (100, ROW), (300, ROW))
    centre, rim, outside = (overlay_alpha(page, 200, ROW + dy) for dy in (0, 14, 24))
    assert centre > rim > 0 and outside == 0  # the tint fades with the strength

    page.select_option("#engine", "diffusers")
    page.click("summary:has-text('Advanced')")
    assert page.is_checked("#soft")  # painting gray switched it on
    page.fill("#prompt", "a red scarf")
    page.fill("#num_inference_steps", "2")
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=90_000)
    screenshot(page, "studio-soft-brush")
    generation = Generation.objects.get(owner=user)
    assert generation.status == "succeeded" and generation.params["soft"] is True
    assert generation.metadata["soft_inpainting"] is True
    with generation.mask.file.open("rb") as handle:
        mask = np.asarray(Image.open(io.BytesIO(handle.read())).convert("L"))
    # White = regenerated (the studio sends mask_mode=white_inpaints): full at the stroke's
    # line, gray towards its rim, black beyond, where the overlay showed the same.
    assert mask[ROW, 200] > 200
    assert 0 < mask[ROW + 14, 200] < 200
    assert mask[ROW + 24, 200] == 0
    grays = ((mask > 0) & (mask < 255)).sum()
    assert grays > 1000  # a whole fading band, not an anti-aliased edge


def test_a_reference_picture_dropped_on_its_slot_reaches_the_job(
    page, live_url, user, tmp_path, models_dir
):
    """The IP-Adapter's reference slot (issue 38): a picture dropped on it goes with the job
    as its reference, the chosen adapter and scale with it."""
    write_tiny_ip_adapter(Path(settings.SD_INPAINT_MODEL), settings.IP_ADAPTERS_DIR / "ipa")
    library_scan()
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(page, path)
    stroke(page, box, (100, ROW), (300, ROW))
    page.select_option("#engine", "diffusers")
    page.select_option("#ip_adapter", "ipa")
    page.fill("#ip_adapter_scale", "0.7")
    reference = png_bytes(gradient(40, 30))
    # A drop of a file: a DataTransfer holding it, as the browser builds for a real drag.
    dropped = page.evaluate_handle(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "chair.png", {type: "image/png"}));
            return transfer;
        }""",
        list(reference),
    )
    page.dispatch_event("#ip-adapter-field", "drop", {"dataTransfer": dropped})
    assert page.evaluate("document.getElementById('ip-reference-input').files[0].name") == (
        "chair.png"
    )
    assert page.locator("#image-canvas").is_visible()  # the drop did not replace the image
    page.fill("#prompt", "a chair")
    page.fill("#num_inference_steps", "2")
    page.locator("#ip-adapter-field").screenshot(
        path=str(SCREENSHOTS / "studio-reference-slot.png")
    )
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=90_000)
    generation = Generation.objects.get(owner=user)
    assert generation.status == "succeeded", generation.error
    assert generation.params["ip_adapter"] == {"name": "ipa", "scale": 0.7}
    (link,) = generation.reference_links.all()
    with link.image.file.open("rb") as handle:
        assert np.array_equal(
            np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB")),
            np.asarray(gradient(40, 30)),
        )
