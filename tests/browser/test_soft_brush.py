"""The soft brush and soft inpainting in the studio (issue 38): a brush of hardness 0 paints a
stroke that fades to its rim; the overlay shows the fading strength; the mask sent and stored
keeps the gray values there; with "Soft inpainting" on, the job regenerates them in part."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import open_image, overlay_alpha, photo, set_brush, stroke

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
