"""A diffusion model that cannot load: a clear message everywhere; auto falls back."""

import pytest

from inpainting.models import Generation
from inpainting.services import runs
from tests.helpers import black_box_mask_png, image_png, post_img2img

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_model(settings, tmp_path):
    settings.INPAINT_ENGINE = "auto"
    settings.SD_INPAINT_MODEL = str(tmp_path / "no-model-here")
    yield settings
    from django.core.cache import cache

    from inpainting.conf import STATUS_KEY

    # The error report must not leak into other tests' pages.
    cache.delete(STATUS_KEY.format(engine="diffusers"))


def submit(api, **fields) -> Generation:
    response = post_img2img(
        api, image_png(), black_box_mask_png(), wait="false", prompt="a rose", **fields
    )
    assert response.status_code == 202, response.content
    return Generation.objects.get(pk=response.json()["id"])


def test_auto_falls_back_to_classical_and_says_so(api, client, user, broken_model):
    generation = submit(api)
    assert generation.engine == "diffusers"  # what auto chose when the job was queued
    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    generation.refresh_from_db()
    assert generation.status == "succeeded" and generation.engine == "classical"
    assert (
        "could not be loaded; the classical engine ran instead" in generation.metadata["fallback"]
    )

    health = api.get("/api/health").json()
    assert health["diffusion_model"]["loaded"] is False
    assert "Could not load the diffusion model" in health["diffusion_model"]["error"]
    client.force_login(user)
    studio = client.get("/")
    assert b"The diffusion model could not be loaded" in studio.content


def test_asking_for_diffusers_by_name_fails_with_the_reason(api, broken_model):
    generation = submit(api, engine="diffusers")
    runs.generation_run(generation_id=str(generation.pk))
    generation.refresh_from_db()
    assert generation.status == "failed"
    assert "Could not load the diffusion model" in generation.error
    assert "download_model" in generation.error
