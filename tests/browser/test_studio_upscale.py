"""Upscaling from the studio (issue 41): a result of the studio is upscaled with the library's
super-resolution model (a tiny Real-ESRGAN, scanned from UPSCALERS_DIR), shown when done, and
found in the history at its new size; the history's page upscales an output too."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from inpainting.models import Generation
from inpainting.services.library import library_scan
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests.browser.conftest import PHONE, screenshot
from tests.browser.helpers import open_image, photo, set_brush, stroke

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TINY = "tiny-RealESRGAN_x4plus.safetensors"


@pytest.mark.parametrize("studio", [None, PHONE], indirect=True, ids=["desktop", "phone"])
def test_a_result_is_upscaled_from_the_studio_and_found_in_the_history(
    studio, tmp_path, user, models_dir, live_url
):
    write_tiny_real_esrgan(Path(settings.UPSCALERS_DIR) / TINY)
    library_scan()
    studio.reload()
    path, size = photo(tmp_path, "chelsea")  # 451 x 300
    box = open_image(studio, path, zoom=None)
    set_brush(studio, 40)
    middle = box["height"] / 2
    stroke(studio, box, (box["width"] * 0.3, middle), (box["width"] * 0.5, middle))
    studio.click("#generate")
    studio.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    removal = Generation.objects.get(owner=user)
    assert studio.inner_text("#result-title") == "Result"

    studio.select_option("#upscale-factor", "2")
    studio.select_option("#upscaler", TINY)
    studio.click("#upscale")
    studio.wait_for_function(
        "() => document.getElementById('result-title').textContent.startsWith('Upscaled')",
        timeout=60_000,
    )
    assert studio.inner_text("#result-title") == "Upscaled to 902×600"
    assert not studio.is_visible("#result-seed-label")
    studio.wait_for_function("() => document.getElementById('after').naturalWidth > 0")
    assert studio.eval_on_selector("#after", "i => [i.naturalWidth, i.naturalHeight]") == [902, 600]
    if studio.viewport_size["width"] > 500:  # the controls (the tiny model paints noise)
        screenshot(studio, "studio-upscale", clip=studio.locator("#result-panel").bounding_box())

    upscaled = Generation.objects.exclude(pk=removal.pk).get(owner=user)
    assert (upscaled.engine, upscaled.model_name) == ("upscale", TINY)
    assert upscaled.params["upscale"]["of"] == {"generation": str(removal.pk), "index": 0}
    assert upscaled.total_steps == 4  # 451 x 300 in 256 px tiles: a step per tile

    studio.goto(studio.url.split("/?")[0].rstrip("/") + "/history/")
    tile = studio.locator(f'a[href="/history/{upscaled.pk}/"]').first
    assert "Upscale to 902x600 (x2, " in tile.inner_text()
    tile.click()
    studio.wait_for_selector("[data-output-image]")
    if studio.viewport_size["width"] > 500:
        screenshot(studio, "history-upscale", full_page=True)
    studio.wait_for_function("() => document.querySelector('[data-output-image]').naturalWidth > 0")
    shown = studio.eval_on_selector("[data-output-image]", "i => [i.naturalWidth, i.naturalHeight]")
    assert shown == [640, 426]  # its thumbnail; the link and the download are 902 x 600
    download = studio.get_attribute("[data-output-download]", "href")
    body = studio.request.get(live_url + download).body()
    assert Image.open(io.BytesIO(body)).size == (902, 600)
    assert size == (451, 300)
