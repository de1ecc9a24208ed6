"""deep-image.ai's documented uncrop and inpainting requests through a real worker."""

import io
import time
import uuid

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from inpainting.models import Generation
from tests.images import box_mask, gradient, png_bytes
from tests.live import Handler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
VERTICAL = png_bytes(gradient(60, 100))  # a vertical image, as in the document
PHOTO = png_bytes(gradient(96, 64))
MASK = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))


@pytest.fixture
def client(api_key, local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    Handler.extra = {
        "/api-example2.jpg": VERTICAL,
        "/inpainting-example.png": PHOTO,
        "/inpainting-example-mask4.png": MASK,
    }
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    client.base = local_server
    return client


def result_image(client, url: str) -> np.ndarray:
    """The result as deep-image.ai's clients download it: a plain GET, no key (a signed link)."""
    response = APIClient().get(url.removeprefix("http://testserver"))
    assert response.status_code == 200, url
    return np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB"))


def test_the_documented_uncrop(client):
    body = {
        "url": f"{client.base}/api-example2.jpg",
        "width": 200,
        "height": 100,
        "fit": {"canvas": "outpainting"},
    }
    response = client.post("/rest_api/process_result", body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "complete" and answer["job"]
    out = result_image(client, answer["result_url"])
    assert out.shape == (100, 200, 3)
    original = np.asarray(Image.open(io.BytesIO(VERTICAL)).convert("RGB"))
    # Centred; untouched beyond the seam's feather (mask_blur = 4 px into the original).
    assert (out[:, 70 + 4 : 130 - 4] == original[:, 4:-4]).all()
    assert Generation.objects.get(pk=answer["job"]).client == "deepimage"


def test_uncrop_with_a_description_scales_a_large_image_to_fit(client):
    Handler.extra["/large.png"] = png_bytes(gradient(300, 500))
    body = {
        "url": f"{client.base}/large.png",
        "width": 200,
        "height": 100,
        "fit": {"canvas": "outpainting"},
        "background": {
            "generate": {
                "adapter_type": "upscale",
                "description": "Boat on Mars with spaceships around.",
            }
        },
    }
    answer = client.post("/rest_api/process_result", body, format="json").json()
    assert result_image(client, answer["result_url"]).shape == (100, 200, 3)
    assert Generation.objects.get().prompt == "Boat on Mars with spaceships around."


def test_the_documented_inpainting(client):
    body = {
        "url": f"{client.base}/inpainting-example.png",
        "background": {
            "generate": {
                "description": "hands touching surfing board",
                "adapter_type": "inpainting",
                "ip_image2": f"{client.base}/inpainting-example-mask4.png",
                "controlnet_conditioning_scale": 0.5,
            }
        },
    }
    answer = client.post("/rest_api/process_result", body, format="json").json()
    assert answer["status"] == "complete"
    out = result_image(client, answer["result_url"])
    original = np.asarray(Image.open(io.BytesIO(PHOTO)).convert("RGB"))
    assert out.shape == original.shape
    assert (out[:, :15] == original[:, :15]).all()  # far from the white box: kept
    assert (out[25:36, 35:56] != original[25:36, 35:56]).any(axis=-1).mean() > 0.5


def test_received_then_result(client, paused_worker, settings):
    settings.IMG2IMG_WAIT_SECONDS = 0.3
    body = {
        "url": f"{client.base}/api-example2.jpg",
        "width": 120,
        "height": 100,
        "fit": {"canvas": "outpainting"},
    }
    answer = client.post("/rest_api/process_result", body, format="json").json()
    assert answer == {"status": "received", "job": answer["job"]}
    paused_worker.resume()
    deadline = time.monotonic() + 30
    while answer["status"] != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.2)
        answer = client.get(f"/rest_api/result/{answer['job']}").json()
    assert "/api/links/" in answer["result_url"]  # a signed link: no key needed


def test_errors(client):
    nothing = client.post(
        "/rest_api/process_result", {"url": f"{client.base}/x.png"}, format="json"
    )
    assert nothing.status_code == 400 and "uncrop" in nothing.json()["message"]
    no_mask = client.post(
        "/rest_api/process_result",
        {
            "url": f"{client.base}/inpainting-example.png",
            "background": {"generate": {"adapter_type": "inpainting"}},
        },
        format="json",
    )
    assert no_mask.status_code == 400 and "ip_image2" in no_mask.json()["message"]
    private = client.post(
        "/rest_api/process_result",
        {
            "url": "http://[::1]/a.png",
            "width": 100,
            "height": 100,
            "fit": {"canvas": "outpainting"},
        },
        format="json",
    )
    assert private.status_code == 400
    assert APIClient().get(f"/rest_api/result/{uuid.uuid4()}").status_code == 401
    assert client.get(f"/rest_api/result/{uuid.uuid4()}").status_code == 404
