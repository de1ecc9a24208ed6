"""FooocusAPI's documented generate_mask, inpaint and outpaint requests, run through a real
worker, with images served by a local test server (URLs) or as data URLs."""

import base64
import io
import time
import uuid

import numpy as np
import pytest
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from inpainting.models import Generation
from tests.images import gradient, png_bytes
from tests.live import Handler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
IMAGE = png_bytes(gradient(96, 66))


def gray_mask() -> bytes:
    """Left half 200 (> 127: inpaint), right half 100 (kept), a white box is inpainted too."""
    mask = Image.new("L", (96, 66), 100)
    mask.paste(200, (0, 0, 48, 66))
    return png_bytes(mask)


@pytest.fixture
def client(api_key, local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the test server is on loopback
    Handler.extra = {"/input.png": IMAGE}
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    client.base = local_server
    return client


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def output(client, url: str) -> np.ndarray:
    """The output as FooocusAPI's clients download it: a plain GET, no key (a signed link)."""
    response = APIClient().get(url.removeprefix("http://testserver"))
    assert response.status_code == 200, url
    return np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB"))


def test_the_documented_inpaint_request(client):
    params = {
        "prompt": "",
        "inpaint_additional_prompt": "a red ball",
        "inpaint_input_image": f"{client.base}/input.png",
        "inpaint_mask_image_upload": data_url(gray_mask()),
    }
    response = client.post("/v1/engine/generate", params, format="json")
    assert response.status_code == 200, response.content
    record = response.json()
    assert record["task_status"] == "finished" and record["progress"] == 100
    assert len(record["result"]) == 1 and record["task_id"]
    out = output(client, record["result"][0])
    original = np.asarray(Image.open(io.BytesIO(IMAGE)).convert("RGB"))
    # > 127 inpaints (binary: no blend); gray 100 is kept. The default seam blurs 4 px.
    assert (out[:, 60:] == original[:, 60:]).all()
    assert (out[:, :40] != original[:, :40]).any(axis=-1).mean() > 0.5
    generation = Generation.objects.get(pk=record["task_id"])
    assert generation.client == "fooocus" and generation.prompt == "a red ball"


def test_the_documented_outpaint_request(client):
    params = {
        "inpaint_input_image": f"{client.base}/input.png",
        "outpaint_selections": ["Left", "Bottom"],
    }
    record = client.post("/v1/engine/generate", params, format="json").json()
    out = output(client, record["result"][0])
    assert out.shape == (66 + 22, 96 + 32, 3)  # one third of each selected side
    original = np.asarray(Image.open(io.BytesIO(IMAGE)).convert("RGB"))
    # Beyond the seam's feather (mask_blur = 4 px into the original) nothing changes.
    assert (out[: 66 - 4, 32 + 4 :] == original[:-4, 4:]).all()


def test_outpaint_distance_and_png_answer(client):
    params = {
        "inpaint_input_image": data_url(IMAGE),
        "outpaint_selections": ["Right"],
        "outpaint_distance_right": 10,
    }
    response = client.post(
        "/v1/engine/generate", params, format="json", headers={"Accept": "image/png"}
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (106, 66)


def test_async_process_then_the_task_endpoint(client):
    params = {
        "inpaint_input_image": data_url(IMAGE),
        "outpaint_selections": ["Top"],
        "async_process": True,
    }
    record = client.post("/v1/engine/generate", params, format="json").json()
    assert record["task_status"] in ("pending", "running", "finished")
    deadline = time.monotonic() + 30
    while record["task_status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.2)
        record = client.get(f"/tasks/{record['task_id']}").json()
    assert len(record["result"]) == 1


def test_the_documented_generate_mask_request(client):
    image = Image.new("RGB", (120, 80), (20, 40, 160))
    ImageDraw.Draw(image).ellipse((35, 15, 85, 65), fill=(250, 140, 20))
    Handler.extra = {"/subject.png": png_bytes(image)}
    params = {
        "image": f"{client.base}/subject.png",
        "mask_model": "isnet-general-use",
        "cloth_category": "full",
        "dino_prompt_text": "",
        "sam_model": "vit_b",
        "box_threshold": 0.3,
        "text_threshold": 0.25,
        "sam_max_detections": 0,
        "dino_erode_or_dilate": 0,
        "dino_debug": False,
    }
    response = client.post("/v1/tools/generate_mask", params, format="json")
    assert response.status_code == 200, response.content
    encoded = response.json()
    assert isinstance(encoded, str) and not encoded.startswith("data:")
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    yy, xx = np.mgrid[0:80, 0:120]
    disc = ((xx - 60) ** 2 + (yy - 40) ** 2) <= 25**2
    selected = mask > 127  # white = inpaint, Fooocus's convention
    assert (selected & disc).sum() / (selected | disc).sum() > 0.8


def test_errors(client):
    missing = client.post(
        "/v1/engine/generate", {"inpaint_input_image": data_url(IMAGE)}, format="json"
    )
    assert missing.status_code == 400 and "outpaint_selections" in missing.json()["message"]
    private = client.post(
        "/v1/engine/generate",
        {"inpaint_input_image": "http://169.254.169.254/x", "outpaint_selections": ["Left"]},
        format="json",
    )
    assert private.status_code == 400 and "private or local" in private.json()["message"]
    wrong_side = client.post(
        "/v1/engine/generate",
        {"inpaint_input_image": data_url(IMAGE), "outpaint_selections": ["Up"]},
        format="json",
    )
    assert wrong_side.status_code == 400
    anonymous = APIClient().post(
        "/v1/tools/generate_mask", {"image": data_url(IMAGE)}, format="json"
    )
    assert anonymous.status_code == 401
    assert client.get(f"/tasks/{uuid.uuid4()}").status_code == 404
