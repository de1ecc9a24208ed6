"""Edit by words in the studio (issue 36): with an edit model chosen, the studio says a mask is
optional; Generate without painting edits the whole picture, Generate with a stroke edits
inside it, and each result lands in view; a model that paints alpha offers a transparent
background."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import open_image, photo, stroke
from tests.conftest import library_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def output(generation: Generation) -> np.ndarray:
    with generation.images.get(index=0).file.open("rb") as handle:
        return np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))


def generate(page) -> None:
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=90_000)
    # The result view takes its size from the picture once it has loaded (results.js layout):
    # on a loaded machine that comes after the panel shows.
    page.wait_for_function("() => document.getElementById('after').naturalWidth > 0")
    page.wait_for_selector("#after", state="visible")


def test_edit_the_whole_picture_then_inside_a_stroke(page, live_url, user, edit_library, tmp_path):
    log_in(page, live_url, "alice", "pw-alice-123")
    path, size = photo(tmp_path, "chelsea")
    original = np.asarray(Image.open(path).convert("RGB"))
    box = open_image(page, path)
    page.select_option("#engine", "diffusers")
    assert page.locator("#edit-field").is_hidden()  # alpha inpaints: a mask is needed
    page.fill("#prompt", "make it winter")
    page.click("#generate")
    assert "Nothing to regenerate yet" in page.inner_text("#studio-message")
    assert not Generation.objects.exists()

    page.select_option("#model", "kontext")
    assert page.locator("#edit-field").is_visible()
    assert "Edit by words" in page.inner_text("#edit-note")
    assert page.locator("#reference-field").is_hidden()  # Kontext reads no reference picture
    page.fill("#num_inference_steps", "2")
    generate(page)
    screenshot(page, "studio-edit-by-words")
    whole = Generation.objects.get(owner=user)
    assert whole.mask is None and whole.metadata["edit"] == "whole"
    picture = output(whole)
    assert picture.shape == original.shape  # the input's size
    assert (picture != original).any(axis=2).mean() > 0.9

    page.click("#back-to-mask")
    stroke(page, box, (150, 100), (250, 150))
    generate(page)
    masked = Generation.objects.exclude(pk=whole.pk).get(owner=user)
    assert masked.mask is not None and masked.metadata["edit"] == "masked"
    changed = (output(masked) != original).any(axis=2)
    assert 0 < changed.mean() < 0.5  # inside the stroke only (and its feather)
    assert not changed[:, : size[0] // 4].any()  # far left of the stroke: untouched


def test_a_transparent_background_is_offered_where_the_model_paints_alpha(
    page, live_url, user, tmp_path, models_dir, tiny_model, qwen21_weights, monkeypatch
):
    """The "Transparent background" box shows only for a model whose VAE paints alpha
    (Qwen-Image-2.1); ticked, the job asks ``background: transparent`` and its result is an
    RGBA PNG."""
    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "qwen21": qwen21_weights})
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    open_image(page, path)
    page.select_option("#engine", "diffusers")
    assert page.locator("#background").evaluate("e => e.closest('.field').hidden")  # SD 1.5
    page.select_option("#model", "qwen21")
    page.click("summary:has-text('Advanced')")
    assert page.locator("#background").is_visible()
    page.check("#background")
    page.fill("#prompt", "cut it out")
    page.fill("#num_inference_steps", "2")
    generate(page)
    generation = Generation.objects.get(owner=user)
    assert generation.params["background"] == "transparent"
    assert generation.metadata["background"] == "transparent"
    with generation.images.get(index=0).file.open("rb") as handle:
        assert Image.open(io.BytesIO(handle.read())).mode == "RGBA"
