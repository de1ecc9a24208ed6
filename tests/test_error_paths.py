"""The four classes of 500 the outside review found (issue 14), each now a 4xx or the right
answer, and a mask that selects everything: a 400 for the classical engine, a job for a
diffusion model."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from inpainting import engine
from inpainting.api import common
from inpainting.models import Generation
from inpainting.params import GenerationParams
from inpainting.services import generations
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status
from tests.images import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _outpaint_only(user) -> Generation:
    return generations.generation_create(
        generations.Sender(user),
        image_file=SimpleUploadedFile("in.png", image_png()),
        mask_file=None,
        params=GenerationParams(outpaint={"left": 16, "right": 0, "top": 0, "bottom": 0}),
    ).generation


# --- 1. re-run of a job that has no mask (outpaint only) ---------------------------------------


def test_rerun_of_an_outpaint_job_without_a_mask_on_the_api(api, user, paused_worker):
    original = _outpaint_only(user)
    response = api.post(f"/api/generations/{original.pk}/rerun/")
    assert response.status_code == 201, response.content
    new = Generation.objects.get(pk=response.json()["id"])
    assert new.mask_id is None and new.params["outpaint"]["left"] == 16
    assert new.status == "queued" and new.source_id == original.source_id


def test_rerun_of_an_outpaint_job_on_the_history_page(client, user, paused_worker):
    original = _outpaint_only(user)
    client.force_login(user)
    response = client.post(f"/history/{original.pk}/rerun/")
    assert response.status_code == 302
    new = Generation.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/history/{new.pk}/"
    assert client.get(response["Location"]).status_code == 200


def test_rerun_of_an_outpaint_job_in_the_admin(client, user, staff_user, paused_worker):
    original = _outpaint_only(user)
    staff_user.is_superuser = True  # acting on others' history needs the change permission
    staff_user.save()
    client.force_login(staff_user)
    response = client.post(
        "/admin/inpainting/generation/",
        {"action": "rerun_selected", "_selected_action": [str(original.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"1 generation(s) queued again" in response.content
    assert Generation.objects.filter(owner=user).count() == 2


# --- 2. deleting a job while a client waits on it ------------------------------------------------


def _compat_bodies(api_key: str) -> dict:
    image64 = base64.b64encode(image_png()).decode()
    white_mask64 = base64.b64encode(
        png_bytes(Image.fromarray(255 - np.asarray(Image.open(io.BytesIO(black_box_mask_png())))))
    ).decode()
    return {
        "img2img": lambda c: post_img2img(
            c,
            image_png(),
            black_box_mask_png(),
            headers={"Authorization": f"Api-Key {api_key}"},
        ),
        "sd-inpaint": lambda c: c.post(
            "/sd-inpaint/inpaint",
            {
                "image": SimpleUploadedFile("i.png", image_png()),
                "mask": SimpleUploadedFile("m.png", base64.b64decode(white_mask64)),
                "prompt": "x",
            },
            headers={"Authorization": f"Api-Key {api_key}"},
        ),
        "modelslab": lambda c: c.post(
            "/api/v6/images/inpaint",
            {"key": api_key, "init_image": image64, "mask_image": white_mask64, "prompt": "x"},
            content_type="application/json",
        ),
        "fooocus": lambda c: c.post(
            "/v1/engine/generate",
            {"inpaint_input_image": image64, "inpaint_mask_image_upload": white_mask64},
            content_type="application/json",
            headers={"X-API-KEY": api_key},
        ),
        "deep-image": lambda c: c.post(
            "/rest_api/process_result",
            {"url": image64, "width": 128, "height": 64, "fit": {"canvas": "outpainting"}},
            content_type="application/json",
            headers={"x-api-key": api_key},
        ),
    }


@pytest.mark.serial  # measures time
@pytest.mark.parametrize(
    "endpoint", ["img2img", "sd-inpaint", "modelslab", "fooocus", "deep-image"]
)
def test_deleting_a_job_while_a_client_waits_answers_the_waiter_404_at_once(
    endpoint, api, api_key, paused_worker
):
    call = _compat_bodies(api_key)[endpoint]
    answer = {}

    def wait_in_a_thread():
        answer["response"] = call(Client())
        answer["at"] = time.monotonic()

    waiter = threading.Thread(target=wait_in_a_thread)
    waiter.start()
    deadline = time.monotonic() + 30
    while not Generation.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    generation = Generation.objects.get()
    # Subscribed or not yet: a waiter reads the row once it has subscribed, so a delete before
    # that is found as surely as one after (no fixed sleep).
    deleted_at = time.monotonic()
    assert api.delete(f"/api/generations/{generation.pk}/").status_code == 204
    waiter.join(30)
    assert not waiter.is_alive(), "the waiter still waits on a deleted job"
    response = answer["response"]
    assert response.status_code == 404, response.content[:300]
    assert "deleted" in response.json()["message"]
    assert answer["at"] - deleted_at < 20  # the event, not the wait limit (60 s)


@pytest.mark.parametrize(
    "endpoint", ["img2img", "sd-inpaint", "modelslab", "fooocus", "deep-image"]
)
def test_a_waiter_that_reads_a_job_between_its_cancel_and_its_delete_answers_404(
    endpoint, user, api_key, monkeypatch
):
    """The delete cancels the row first (so a worker stops writing into it), then deletes it in
    a transaction: a waiter that wakes in between reads 'cancelled' and still says 'deleted'.
    Here the delete's transaction fails, which holds the row in that moment for good."""

    def refuse(*args, **kwargs):
        raise RuntimeError("the delete is held")

    async def delete_while_waiting(generation_id, timeout):
        generation = await sync_to_async(Generation.objects.get)(pk=generation_id)
        monkeypatch.setattr(Generation, "delete", refuse)
        with pytest.raises(RuntimeError):
            await sync_to_async(generations.generation_delete)(generation=generation)

    monkeypatch.setattr(common, "wait_until_finished", delete_while_waiting)
    response = _compat_bodies(api_key)[endpoint](Client())
    assert response.status_code == 404, response.content[:300]
    assert "deleted" in response.json()["message"]
    assert Generation.objects.get().status == Generation.Status.CANCELLED  # the row is still here


# --- 3. extreme aspect ratios in mask generation -------------------------------------------------


@pytest.mark.parametrize("size", [(16383, 1), (1, 16383), (5000, 2)])
def test_mask_generation_on_a_strip(api, size):
    strip = png_bytes(Image.new("RGB", size, (200, 30, 30)))
    for data in (
        {"method": "grabcut", "box": f"[0, 0, {size[0]}, {size[1]}]"},
        {"method": "flood", "point": "[0, 0]"},
        {"method": "grabcut", "points": "[[0, 0, 1]]"},
    ):
        response = api.post(
            "/api/masks/generate",
            {"image": SimpleUploadedFile("s.png", strip), **data},
            format="multipart",
        )
        assert response.status_code == 200, (data, response.content[:300])
        assert Image.open(io.BytesIO(response.content)).size == size


def test_fooocus_generate_mask_on_a_strip(client, api_key):
    strip = base64.b64encode(png_bytes(Image.new("RGB", (16383, 1), (9, 9, 9)))).decode()
    response = client.post(
        "/v1/tools/generate_mask",
        {"image": strip},
        content_type="application/json",
        headers={"X-API-KEY": api_key},
    )
    assert response.status_code == 200, response.content[:300]
    mask = Image.open(io.BytesIO(base64.b64decode(response.json())))
    assert mask.size == (16383, 1)


# --- 4. a side longer than the PNG encoder takes -------------------------------------------------


def test_a_side_over_the_limit_is_a_400_before_decoding(api, client, api_key, settings):
    long_strip = png_bytes(Image.new("RGB", (1_000_001, 1), (1, 2, 3)))
    mask = png_bytes(Image.new("L", (1_000_001, 1), 0))
    response = post_img2img(api, long_strip, mask)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"]["image"] == [
        "The image is 1000001x1 pixels; the limit is 16384 pixels on a side."
    ]
    response = client.post(
        "/sd-inpaint/inpaint",
        {
            "image": SimpleUploadedFile("i.png", long_strip),
            "mask": SimpleUploadedFile("m.png", mask),
            "prompt": "x",
        },
        headers={"Authorization": f"Api-Key {api_key}"},
    )
    assert response.status_code == 400 and "on a side" in response.json()["message"]
    response = client.post(
        "/v1/engine/generate",
        {
            "inpaint_input_image": base64.b64encode(long_strip).decode(),
            "inpaint_mask_image_upload": base64.b64encode(mask).decode(),
        },
        content_type="application/json",
        headers={"X-API-KEY": api_key},
    )
    assert response.status_code == 400 and "on a side" in response.json()["message"]
    assert not Generation.objects.exists()


# --- a mask that selects everything --------------------------------------------------------------


def test_a_full_mask_is_a_400_for_the_classical_engine(api):
    everything = png_bytes(Image.new("L", (96, 64), 0))  # black = inpaint: every pixel
    response = post_img2img(api, image_png(), everything, engine="classical")
    assert response.status_code == 400
    body = response.json()
    assert "selects every pixel" in body["errors"]["mask"][0]
    assert not Generation.objects.exists()


def test_a_full_mask_runs_on_a_diffusion_model(api, celery_worker):
    everything = png_bytes(Image.new("L", (96, 64), 0))
    response = post_img2img(
        api, image_png(), everything, engine="diffusers", prompt="a meadow", wait="false"
    )
    assert response.status_code == 202, response.content
    generation = wait_for_status(response.json()["id"], timeout=120)
    assert generation.status == "succeeded", generation.error


def test_an_error_for_a_client_that_accepts_png_is_still_json(client, api_key):
    response = client.post(
        "/v1/engine/generate",
        {"inpaint_input_image": "not an image"},
        content_type="application/json",
        headers={"X-API-KEY": api_key, "Accept": "image/png"},
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] == "error"


def test_the_engines_invalid_input_from_a_service_is_a_400_with_nothing_translating_it(
    api, monkeypatch
):
    """The engine's ``InvalidInput`` is a ``ClientError``: raised by a service with no
    try/except around it, the API answers 400 in the one error shape, naming the field (a
    missed translation used to make a client's mistake a 500)."""

    def refuse(user, **options):
        raise engine.InvalidInput("The engine refused this request.", field="prompt")

    monkeypatch.setattr(generations, "quota_check", refuse)
    response = post_img2img(api, image_png(), black_box_mask_png())
    assert response.status_code == 400, response.content
    assert response.json() == {
        "status": "error",
        "message": "The engine refused this request.",
        "errors": {"prompt": ["The engine refused this request."]},
    }
    assert not Generation.objects.exists()
