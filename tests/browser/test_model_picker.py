"""The studio's model picker (issue 16): pick a library model, generate, and the history and
the detail page say which model made the picture."""

from __future__ import annotations

import shutil

import pytest
from huggingface_hub import constants as hf_constants

from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.tiny_model import write_tiny_inpaint_model
from tests.browser.conftest import log_in
from tests.browser.helpers import open_image, photo, stroke
from tests.helpers import wait_until_served

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def two_models(tmp_path, models_dir, tiny_model, monkeypatch):
    root = models_dir
    shutil.copytree(tiny_model, root / "alpha")
    write_tiny_inpaint_model(root / "beta", seed=1)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    wait_until_served(*LibraryModel.objects.values_list("name", flat=True))


def test_pick_a_model_in_the_studio_and_find_it_in_the_history(
    page, live_url, user, two_models, tmp_path
):
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(page, path)
    assert page.locator("#model-field").is_hidden()  # classical: no model to pick
    page.select_option("#engine", "diffusers")
    options = page.locator("#model option").all_inner_texts()
    assert options == ["alpha (SD15, inpainting, default)", "beta (SD15, inpainting)"]
    page.select_option("#model", "beta")
    page.fill("#prompt", "a red rose")
    page.fill("#num_inference_steps", "4")
    stroke(page, box, (150, 100), (250, 150))
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    generation = Generation.objects.get(owner=user)
    assert generation.model_name == "beta" and generation.params["model"] == "beta"
    page.goto(f"{live_url}/history/")
    tile = page.locator(f"[data-generation-id='{generation.pk}']")
    assert "diffusers · beta" in tile.inner_text()
    tile.locator("a").click()
    page.wait_for_selector("text=Parameters")
    rows = dict(
        zip(
            page.locator("table.params th").all_inner_texts(),
            page.locator("table.params td").all_inner_texts(),
            strict=True,
        )
    )
    assert rows["Model"] == "beta"
