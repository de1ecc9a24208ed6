"""The studio's first hour, round three (issue 79): a picture over the server's pixel limit is
refused when it is loaded (with a copy that fits offered), not after painting at Generate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import screenshot

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
