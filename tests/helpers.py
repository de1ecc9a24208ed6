"""Request helpers shared by the API tests."""

from __future__ import annotations

import base64
import json
import time

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.images import box_mask, gradient, png_bytes

W, H = 96, 64
BOX = (32, 20, 63, 43)


def image_png(width: int = W, height: int = H) -> bytes:
    return png_bytes(gradient(width, height))


def black_box_mask_png(width: int = W, height: int = H, box=BOX) -> bytes:
    """DreamLayer polarity: white kept, black inpainted."""
    return png_bytes(box_mask(width, height, box, inpaint_white=False))


def post_img2img(
    client, image: bytes | None = None, mask: bytes | None = None, headers=None, **fields
):
    data = dict(fields)
    if image is not None:
        data["image"] = SimpleUploadedFile("photo.png", image, "image/png")
    if mask is not None:
        data["mask"] = SimpleUploadedFile("mask.png", mask, "image/png")
    return client.post("/api/img2img", data, format="multipart", headers=headers or {})


def wait_for_status(
    generation_id, statuses=("succeeded", "failed", "cancelled"), timeout: float = 60.0
):
    from inpainting.models import Generation

    return wait_for_row_status(Generation, generation_id, statuses, timeout)


def wait_for_row_status(model, pk, statuses, timeout: float = 60.0):
    """The row of ``model`` (a job: a generation, a model install) once its status is one of
    ``statuses``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = model.objects.get(pk=pk)
        if row.status in statuses:
            return row
        time.sleep(0.05)
    raise AssertionError(f"{model.__name__} {pk} stayed {row.status}")


def wait_until_served(*models: str, timeout: float = 30.0) -> None:
    """Wait until a live worker reports serving each of ``models`` (a worker picks up new
    library models on its next report, as it does in production after a scan)."""
    from inpainting.fleet import reports_live, workers_serving

    asked = time.time()
    deadline = time.monotonic() + timeout
    missing = list(models)
    while time.monotonic() < deadline:
        # Only reports written after the call count: one from before a test changed the
        # library (its previous test's models) may say what is no longer true.
        fresh = all(r["reported_at"] > asked for r in reports_live())
        missing = [name for name in models if not workers_serving(name)]
        if fresh and not missing:
            return
        time.sleep(0.1)
    raise AssertionError(f"no live worker serves {missing}")


def compat_submissions(api_key):
    """Submitters for the two compatible APIs that name a model: ModelsLab (``model_id``) and
    FooocusAPI (``base_model_name``)."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    image, mask = image_png(), png_bytes(box_mask(96, 64, BOX, inpaint_white=True))
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    mask_url = "data:image/png;base64," + base64.b64encode(mask).decode()

    def modelslab(model_id, **fields):
        body = {
            "key": api_key,
            "model_id": model_id,
            "prompt": "a cat",
            "init_image": data_url,
            "mask_image": mask_url,
            "seed": 5,
            "steps": 4,
            **fields,
        }
        return client.post("/api/v6/images/inpaint", body, format="json")

    def fooocus(name):
        body = {
            "prompt": "a cat",
            "inpaint_input_image": data_url,
            "inpaint_mask_image_upload": mask_url,
            "image_seed": 5,
            "base_model_name": name,
        }
        return client.post("/v1/engine/generate", body, format="json")

    return modelslab, fooocus


#: ``run_job``'s mask unless told: the black box of ``black_box_mask_png``.
BOX_MASK = "box"


def run_job(api, mask: bytes | str | None = BOX_MASK, **fields):
    """Submit a diffusers job (seed 5, "a red rose" unless given) on ``image_png`` with
    ``mask`` (None: none), wait for it, and insist that it succeeded."""
    fields = {"prompt": "a red rose", "engine": "diffusers", "seed": 5, "wait": "false", **fields}
    mask = black_box_mask_png() if mask == BOX_MASK else mask
    response = post_img2img(api, image_png(), mask, **fields)
    assert response.status_code == 202, response.content
    generation = wait_for_status(response.json()["id"], timeout=120)
    assert generation.status == "succeeded", generation.error
    return generation


def output_pixels(generation, index: int = 0):
    """The RGB pixels of a generation's output image."""
    import numpy as np
    from PIL import Image

    with generation.images.get(index=index).file.open("rb") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def answer_json(response):
    """The JSON of an answer, streamed or not (A1111's extras stream theirs, ADR 11)."""
    if getattr(response, "streaming", False):
        return json.loads(b"".join(response))
    return response.json()


def studio_client(user):
    """A session of ``user`` that sends what the studio page sends with its jobs: its token
    (``X-DreamLayer-Studio``), which puts them in the studio lane."""
    from rest_framework.test import APIClient

    from inpainting.services.generations import studio_token

    client = APIClient()
    client.force_login(user)
    token = studio_token(user, client.session.session_key)
    client.credentials(HTTP_X_DREAMLAYER_STUDIO=token)
    return client
