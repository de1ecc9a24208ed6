"""ModelsLab v6 inpaint and fetch: the documented JSON body, with base64 images and with URLs
served by a local test server, through a real worker."""

import base64
import io
import time

import numpy as np
import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation
from tests.images import box_mask, gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
URL = "/api/v6/images/inpaint"
IMAGE = png_bytes(gradient(96, 64))
MASK = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))  # white = inpaint


def documented_body(key: str, init_image: str, mask_image: str, changes=None, **more) -> dict:
    body = {
        "key": key,
        "model_id": "lazymixv4-inpaint",
        "prompt": "a cat sitting on a bench",
        "negative_prompt": None,
        "init_image": init_image,
        "mask_image": mask_image,
        "width": "512",
        "height": "512",
        "samples": "1",
        "steps": "21",
        "safety_checker": "no",
        "guidance_scale": 7.5,
        "strength": 0.7,
        "scheduler": "UniPCMultistepScheduler",
        "lora_model": None,
        "use_karras_sigmas": "yes",
        "vae": None,
        "lora_strength": None,
        "seed": None,
        "webhook": None,
        "track_id": None,
    }
    body.update(changes or {}, **more)
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_polarity(png: bytes) -> None:
    out = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(IMAGE)).convert("RGB"))
    mask = effective_mask(
        Image.open(io.BytesIO(MASK)), (96, 64), MaskOptions(mode="white_inpaints")
    )
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.5


def test_documented_body_with_base64_images(api_key):
    client = APIClient()
    response = client.post(URL, documented_body(api_key, b64(IMAGE), b64(MASK)), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    assert isinstance(body["generationTime"], float) and body["id"]
    assert len(body["output"]) == 1 and "/api/links/" in body["output"][0]  # signed: no key
    meta = body["meta"]
    assert meta["prompt"] == "a cat sitting on a bench" and isinstance(meta["seed"], int)
    assert meta["num_inference_steps"] == 21 and meta["model_id"] == "lazymixv4-inpaint"
    generation = Generation.objects.get(pk=body["id"])
    assert generation.client == "modelslab"
    assert (
        generation.params["scheduler"] == "UniPC" and generation.params["denoising_strength"] == 0.7
    )
    image = Client().get(body["output"][0].removeprefix("http://testserver"))  # a plain GET
    assert_polarity(b"".join(image.streaming_content))


def test_documented_body_with_urls_and_base64_output(api_key, local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the test server is on loopback
    body = documented_body(
        api_key,
        f"{local_server}/image.png",
        f"{local_server}/mask.png",
        base64=True,
        samples=2,
        seed=11,
        scheduler="DPMSolverMultistepScheduler",
    )
    from tests.live import Handler

    Handler.extra = {"/mask.png": MASK}
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 200, response.content
    output = response.json()["output"]
    assert len(output) == 2
    assert_polarity(base64.b64decode(output[0]))
    generation = Generation.objects.get()
    assert generation.seed == 11 and generation.params["scheduler"] == "DPM++ 2M Karras"


def test_processing_then_fetch(api_key, paused_worker, settings):
    settings.IMG2IMG_WAIT_SECONDS = 0.3
    client = APIClient()
    first = client.post(URL, documented_body(api_key, b64(IMAGE), b64(MASK)), format="json")
    body = first.json()
    assert body["status"] == "processing" and body["output"] == []
    assert body["fetch_result"] == f"http://testserver/api/v6/images/fetch/{body['id']}"
    paused_worker.resume()
    deadline = time.monotonic() + 30
    while True:
        fetched = client.post(
            body["fetch_result"].removeprefix("http://testserver"), {"key": api_key}, format="json"
        ).json()
        if fetched["status"] == "success":
            break
        assert fetched["status"] == "processing" and time.monotonic() < deadline
        time.sleep(0.2)
    assert fetched["id"] == body["id"] and len(fetched["output"]) == 1
    # ModelsLab's links need no key: a client downloads the picture with a plain GET.
    link = fetched["output"][0].removeprefix("http://testserver")
    plain = Client().get(link)
    assert plain.status_code == 200 and plain["Content-Type"] == "image/png"
    png = b"".join(plain.streaming_content)
    assert_polarity(png)
    with Generation.objects.get(pk=body["id"]).images.get().file.open("rb") as stored:
        assert png == stored.read()  # the stored file as it is, not re-encoded
    # A tampered link, an expired one and a deleted job's are 404s.
    assert (
        Client().get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")).status_code == 404
    )
    settings.IMAGE_LINK_SECONDS = -1
    assert Client().get(link).status_code == 404
    settings.IMAGE_LINK_SECONDS = 3600
    assert Client().get(link).status_code == 200
    Generation.objects.get(pk=body["id"]).delete()
    assert Client().get(link).status_code == 404


@pytest.mark.parametrize(
    "changes,status,words",
    [
        ({"key": None}, 401, "No API key: send it as 'key' in the JSON body, or as"),
        ({"key": "dl_wrong.key"}, 401, "Invalid API key"),
        ({"init_image": "not base64 at all!"}, 400, "URL, a data URL or base64"),
        ({"init_image": "http://169.254.169.254/latest/"}, 400, "private or local address"),
        ({"mask_image": "file:///etc/passwd"}, 400, "http or https"),
        ({"webhook": "http://10.0.0.1/hook"}, 400, "private or local address"),
        ({"scheduler": "WarpScheduler"}, 400, "Unsupported scheduler"),
        ({"samples": 5}, 400, "less than or equal to 4"),
    ],
)
def test_errors(api_key, changes, status, words):
    body = documented_body(api_key, b64(IMAGE), b64(MASK), changes)
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["status"] == "error" and words in response.json()["message"]
    assert Generation.objects.count() == 0


def test_fetch_of_another_users_job_is_404(api_key, other_user):
    from accounts.services import api_key_create

    body = (
        APIClient().post(URL, documented_body(api_key, b64(IMAGE), b64(MASK)), format="json").json()
    )
    _, other_key = api_key_create(user=other_user, name="o")
    response = APIClient().post(
        f"/api/v6/images/fetch/{body['id']}", {"key": other_key}, format="json"
    )
    assert response.status_code == 404 and response.json()["status"] == "error"


@pytest.mark.parametrize(
    "path,allow_private,words",
    [
        ("http://127.0.0.1/x.png", False, "private or local address"),
        ("http://169.254.169.254/latest/meta-data/", False, "private or local address"),
        ("http://[::1]/x.png", False, "private or local address"),
        ("{server}/redirect-private", True, "private or local address"),
        ("gopher://example.com/x.png", False, "http or https"),
        ("{server}/big", True, "larger than 10 MB"),
    ],
)
def test_ssrf_and_size_rules_answer_400(
    api_key,
    local_server,
    settings,
    path,
    allow_private,
    words,
):
    settings.URL_FETCH_ALLOW_PRIVATE = allow_private
    body = documented_body(api_key, path.format(server=local_server), b64(MASK))
    response = APIClient().post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["status"] == "error" and words in response.json()["message"]
    assert Generation.objects.count() == 0
