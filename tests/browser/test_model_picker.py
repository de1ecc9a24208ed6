"""The studio's model picker (issue 16): pick a library model, generate, and the history and
the detail page say which model made the picture."""

from __future__ import annotations

import shutil

import pytest
from django.conf import settings
from huggingface_hub import constants as hf_constants

from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_model_set_default, library_scan
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from inpainting.testing.tiny_flow import write_tiny_flux_fill_model
from inpainting.testing.tiny_lora import write_tiny_lora
from inpainting.testing.tiny_model import write_tiny_inpaint_model, write_tiny_sdxl_inpaint_model
from tests.browser.conftest import SCREENSHOTS, log_in
from tests.browser.helpers import (
    generate_with_model,
    open_image,
    parameter_rows,
    photo,
    stroke,
)
from tests.helpers import wait_until_served

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def two_models(tmp_path, models_dir, tiny_model, monkeypatch):
    """alpha and beta (SD 1.5), two LoRAs (ink for SD 1.5, xl-style for SDXL) and an SD 1.5
    inpaint ControlNet."""
    root = models_dir
    shutil.copytree(tiny_model, root / "alpha")
    write_tiny_inpaint_model(root / "beta", seed=1)
    write_tiny_lora(tiny_model, settings.LORAS_DIR / "ink.safetensors", layout="kohya")
    xl = write_tiny_sdxl_inpaint_model(tmp_path / "xl")
    write_tiny_lora(xl, settings.LORAS_DIR / "xl-style.safetensors", layout="peft")
    write_tiny_controlnet(tiny_model, settings.CONTROLNETS_DIR / "inpaint-cn")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    wait_until_served(*LibraryModel.objects.checkpoints().values_list("name", flat=True))


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
    generate_with_model(page, box, "beta")
    generation = Generation.objects.get(owner=user)
    assert generation.model_name == "beta" and generation.params["model"] == "beta"
    page.goto(f"{live_url}/history/")
    tile = page.locator(f"[data-generation-id='{generation.pk}']")
    assert "diffusers · beta" in tile.inner_text()
    tile.locator("a").click()
    page.wait_for_selector("text=Parameters")
    rows = parameter_rows(page)
    assert rows["Model"] == "beta"


def test_pick_a_lora_its_strength_and_a_controlnet_and_find_them_in_the_history(
    page, live_url, user, two_models, tmp_path
):
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(page, path)
    assert page.locator("#lora-field").is_hidden()  # classical: no LoRAs
    page.select_option("#engine", "diffusers")
    # Only LoRAs made for the model's family (SD 1.5) can be added.
    assert page.locator("#lora-pick option[value='xl-style.safetensors']").is_disabled()
    page.select_option("#lora-pick", "ink.safetensors")
    page.click("#lora-add")
    slider = page.get_by_label("Strength of ink.safetensors")
    slider.fill("0.8")
    assert page.locator("#lora-list output").inner_text() == "0.8"
    page.locator("#lora-field").screenshot(path=str(tmp_path / "lora-picker.png"))
    page.fill("#prompt", "a red rose")
    page.fill("#num_inference_steps", "4")
    # The ControlNet picker sits under Advanced.
    page.click("summary:has-text('Advanced')")
    page.select_option("#controlnet", "inpaint-cn")
    page.fill("#controlnet_scale", "0.6")
    page.locator("#controlnet-field").screenshot(path=str(tmp_path / "controlnet-picker.png"))
    stroke(page, box, (150, 100), (250, 150))
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    generation = Generation.objects.get(owner=user)
    assert generation.status == "succeeded", generation.error
    assert generation.params["loras"] == [{"name": "ink.safetensors", "weight": 0.8}]
    assert generation.params["controlnet"]["name"] == "inpaint-cn"
    assert generation.params["controlnet"]["conditioning_scale"] == 0.6
    page.goto(f"{live_url}/history/{generation.pk}/")
    page.wait_for_selector("text=Parameters")
    rows = parameter_rows(page)
    assert rows["LoRAs"] == "ink.safetensors (0.8)"
    assert rows["ControlNet"] == "inpaint-cn (scale 0.6, steps 0-1)"
    page.screenshot(path=str(tmp_path / "lora-detail.png"))


@pytest.fixture
def flux_and_sd(tmp_path, models_dir, tiny_model, monkeypatch):
    """alpha (SD 1.5, the default) and fill (a tiny FLUX.1 Fill)."""
    shutil.copytree(tiny_model, models_dir / "alpha")
    write_tiny_flux_fill_model(models_dir / "fill")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    library_scan()
    library_model_set_default(model=LibraryModel.objects.get(name="alpha"))
    wait_until_served("alpha", "fill")


def test_a_flux_model_hides_the_negative_prompt_and_brings_its_defaults(
    page, live_url, user, flux_and_sd, tmp_path
):
    log_in(page, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(page, path)
    page.select_option("#engine", "diffusers")
    steps, guidance = page.locator("#num_inference_steps"), page.locator("#guidance_scale")
    assert (steps.input_value(), guidance.input_value()) == ("30", "7.5")  # alpha's: SD
    assert not page.locator("#scheduler").evaluate("e => e.closest('.field').hidden")
    assert page.locator("#speed").evaluate("e => e.closest('.field').hidden")  # SD: no fast tier
    page.fill("#negative_prompt", "blurry")
    assert page.locator("#negative_prompt").is_visible()

    page.select_option("#model", "fill")
    assert page.locator("#negative_prompt").is_hidden()
    for unused in ("#scheduler", "#clip_skip"):  # under Advanced: their fields are hidden
        assert page.locator(unused).evaluate("e => e.closest('.field').hidden"), unused
    assert (steps.input_value(), guidance.input_value()) == ("50", "30.0")
    assert (guidance.get_attribute("max"), steps.get_attribute("max")) == ("100.0", "100")
    page.screenshot(path=str(SCREENSHOTS / "studio-flux.png"), full_page=True)
    page.click("summary:has-text('Advanced')")
    page.check("#speed")  # FLUX.1 Fill has the fast tier

    page.fill("#prompt", "a red rose")
    steps.fill("4")
    stroke(page, box, (150, 100), (250, 150))
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    generation = Generation.objects.get(owner=user)
    assert generation.model_name == "fill" and generation.params["guidance_scale"] == 30.0
    assert generation.params["speed"] == "fast" and generation.metadata["speed"] == "fast"
    # The hidden negative prompt was not sent: nothing was ignored, nothing to warn about.
    assert generation.params["negative_prompt"] == "" and "warnings" not in generation.metadata

    page.select_option("#model", "alpha")
    assert page.locator("#negative_prompt").is_visible()
    assert page.locator("#speed").is_hidden()
    assert (steps.input_value(), guidance.input_value()) == ("30", "7.5")
