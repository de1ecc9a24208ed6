"""Clients from the package index, installed unchanged (pyproject's dev extra pins each
version), driven against a live server and a real worker (the tiny random model), issue 83:

- sd-backend-client 0.5.0 (IntraPaint's headless client for AUTOMATIC1111 / Forge): its
  defaults (sampler ``euler_ancestral``, scheduler ``normal``), its check of A1111's ``info``
  shape (``GenerationInfoData``), its cancel (an interrupt, reported as cancelled) and its
  upscale.
- openai 3.54: ``models.list()`` and ``models.retrieve()``, and its errors on a path not here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import openai
import pytest
from django.conf import settings
from PIL import Image
from sd_backend_client.api.a1111_webservice import A1111Webservice
from sd_backend_client.api.shared_data.diffusion_params import DiffusionParams
from sd_backend_client.api.shared_data.generation_handle import GenerationError, GenerationStatus

from tests.conftest import child_env
from tests.images import box_mask, gradient
from tests.live import daphne_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

W, H = 96, 64
BOX = (30, 18, 62, 44)
#: Far enough from the box that no blur or feather reaches: always the input's pixels.
CORNERS = (slice(0, 8), slice(0, 12))


@pytest.fixture(scope="module")
def server(django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env(IMG2IMG_WAIT_SECONDS="120", INPAINT_ENGINE="auto")
    log = Path(settings.DATA_DIR) / "daphne-package-clients.log"
    with daphne_server(env, log) as url:
        yield url


def check_inpainted(image: Image.Image) -> None:
    """The picture is the input's size, the box was repainted, the far corner kept exactly."""
    out, original = np.asarray(image.convert("RGB")), np.asarray(gradient(W, H))
    assert out.shape == original.shape
    assert np.array_equal(out[CORNERS], original[CORNERS])
    x0, y0, x1, y1 = BOX
    assert (out[y0:y1, x0:x1] != original[y0:y1, x0:x1]).any()


def sd_backend(server: str, key: str) -> A1111Webservice:
    """The client as IntraPaint's headless users make it: credentials given when asked (a 401)."""
    return A1111Webservice(server, credentials_provider=lambda: ("me", key))


def test_sd_backend_client_inpaints_with_its_defaults_and_upscales(server, api_key):
    service = sd_backend(server, api_key)
    schedulers = [option.name for option in service.list_schedulers()]
    assert "normal" in schedulers and "karras" in schedulers
    assert service.get_capabilities().scheduler is True
    params = DiffusionParams(
        prompt="a red ball",
        init_images=[gradient(W, H)],
        mask=box_mask(W, H, BOX, inpaint_white=True),
        width=W,
        height=H,
        steps=3,
        seed=77,
        batch_size=2,
    )
    assert (params.sampler, params.scheduler) == ("euler_ancestral", "normal")  # its defaults
    seen = []
    result = service.submit_inpaint(params).wait(timeout=120, on_progress=seen.append)
    assert seen[-1].status is GenerationStatus.FINISHED
    assert result.seeds == [77, 78] and len(result.images) == 2
    for image in result.images:
        check_inpainted(image)
    info = result.raw_info  # GenerationInfoData: A1111's info shape, validated by the client
    assert info.sampler_name == "Euler a" and info.version and info.all_seeds == [77, 78]
    assert info.sd_vae_name is None and info.sd_vae_hash is None  # as A1111 with no VAE chosen
    assert (info.width, info.height, info.seed) == (W, H, 77)
    # Its upscale: the first upscaler that is not "None", to a size.
    upscaled = service.submit_upscale(gradient(W, H), 2 * W, 2 * H).wait(timeout=120)
    assert [image.size for image in upscaled.images] == [(2 * W, 2 * H)]


def test_sd_backend_client_reports_progress_and_a_cancel_as_cancelled(server, api_key):
    service = sd_backend(server, api_key)
    params = DiffusionParams(
        prompt="a red ball",
        init_images=[gradient(W, H)],
        mask=box_mask(W, H, BOX, inpaint_white=True),
        width=W,
        height=H,
        steps=150,
    )
    handle = service.submit_inpaint(params)
    deadline = time.monotonic() + 90
    progress = handle.poll()
    while not (progress.status is GenerationStatus.ACTIVE and (progress.progress or 0) > 0):
        assert time.monotonic() < deadline, f"no progress: {progress}"
        time.sleep(0.2)
        progress = handle.poll()
    assert 0 < progress.progress < 1 and progress.eta_seconds is not None
    assert handle.cancel() is True
    with pytest.raises(GenerationError) as raised:
        handle.wait(timeout=60)
    assert raised.value.status is GenerationStatus.CANCELLED  # a cancel, not a failure


def test_the_openai_sdk_lists_the_models_its_key_may_run(server, api_key):
    """``models.list()``, what apps built on the openai SDK call first: with an empty library,
    the one model a job runs (the deployment's); an unknown model, an unknown path under
    OpenAI's: OpenAI's error object, raised by the SDK as ``NotFoundError``."""
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0)
    models = client.models.list()
    assert [model.object for model in models.data] == ["model"]
    only = models.data[0]
    assert only.owned_by == "dreamlayer" and client.models.retrieve(only.id).id == only.id
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("gpt-image-9")
    assert "does not exist here" in raised.value.message
    with pytest.raises(openai.NotFoundError):
        client.post("/images/variations", body={}, cast_to=object)  # not served here
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="dl_x.y", max_retries=0).models.list()
