"""Each seed document's answer, key by key: every key a document's example shows is in
DreamLayer's answer with the type the document gives, for the classical engine and for a
diffusion model (the tiny random one), so a client that reads what its document shows never
meets a ``KeyError`` whichever engine the server runs (issue 75).

The documents (``shared/seeds``, not in a user's clone) are quoted here as shapes: a dict's
keys, a list's item, a value's type. Where DreamLayer differs on purpose, the difference is
named beside the shape and in docs/compatible-apis.md (ModelsLab's ``id`` is a UUID string)."""

import base64
import io
import time

import pytest
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from inpainting.models import Generation
from tests.images import box_mask, gradient, png_bytes
from tests.live import Handler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

PHOTO = png_bytes(gradient(96, 64))
WHITE_INPAINTS = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))
BLACK_INPAINTS = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=False))
ANY_ID = str  # ModelsLab's schema says integer; DreamLayer's ids are UUID strings (documented)

#: 000, "Response Format" of POST /api/img2img.
NATIVE = {
    "status": "success",
    "images": ["path/to/generated/image.png"],
    "metadata": {
        "prompt": "Your prompt here",
        "negative_prompt": "Negative prompt",
        "denoising_strength": 0.75,
    },
}
#: 001, GET /sd-inpaint/health's "Response".
SD_HEALTH = {
    "status": "healthy",
    "service": "stable-diffusion-inpaint",
    "model": "runwayml/stable-diffusion-inpainting",
}
#: 002, ImageGenerationSuccessResponse's properties (types as its OpenAPI schema gives them).
MODELSLAB_SUCCESS = {
    "status": "success",
    "generationTime": 0.5,
    "id": ANY_ID,
    "output": ["https://example.com/1.png"],
    "proxy_links": ["https://example.com/1.png"],
    "meta": {},
    "nsfw_content_detected": False,
    "webhook_status": "",
    "tip": "",
}
#: 002, ImageGenerationProcessingResponse's properties.
MODELSLAB_PROCESSING = {
    "status": "processing",
    "tip": "",
    "tip_1": "",
    "eta": 1.0,
    "message": "",
    "webhook_status": "",
    "fetch_result": "https://example.com/fetch",
    "id": ANY_ID,
    "output": [],
    "meta": {},
    "future_links": [],
}
#: 003 shows the requests and the generate_mask answer (a base64 string, no data: prefix);
#: the task record is FooocusAPI's (docs/compatible-apis.md): what its clients poll and read.
FOOOCUS_TASK = {
    "task_id": "",
    "task_status": "finished",
    "progress": 100,
    "result": ["https://example.com/1.png"],
}
#: 004's job answer: deep-image.ai's process_result.
DEEPIMAGE_JOB = {"status": "complete", "job": "", "result_url": "https://example.com/1.png"}


def assert_shape(answer, example, where="answer"):
    """``answer`` has every key ``example`` shows, each of the example's type; a list's items
    have the shape of the example's first item."""
    if example is ANY_ID:
        assert isinstance(answer, str) and answer, where
    elif isinstance(example, dict):
        assert isinstance(answer, dict), f"{where} is {type(answer).__name__}, not an object"
        for key, value in example.items():
            assert key in answer, f"{where} has no {key!r} (it has {sorted(answer)})"
            assert_shape(answer[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(answer, list), f"{where} is {type(answer).__name__}, not a list"
        if example:
            assert answer, f"{where} is empty"
            for index, item in enumerate(answer):
                assert_shape(item, example[0], f"{where}[{index}]")
    elif isinstance(example, bool):
        assert isinstance(answer, bool), f"{where} = {answer!r} is not a boolean"
    elif isinstance(example, (int, float)):
        number = isinstance(answer, (int, float)) and not isinstance(answer, bool)
        assert number, f"{where} = {answer!r} is not a number"
    else:
        assert isinstance(answer, str), f"{where} = {answer!r} is not a string"


@pytest.fixture(params=["classical", "diffusers"])
def engine(request, settings, local_server):
    """The server's engine: the classical fill, or the tiny diffusion model the session's
    worker loads (the web process chooses the engine at submission)."""
    settings.INPAINT_ENGINE = request.param
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the documents' image URLs: the test server
    Handler.extra = {"/input.png": PHOTO, "/mask.png": WHITE_INPAINTS}
    return request.param


@pytest.fixture
def keyed(api_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    return client


def ran(job_id: str, engine: str) -> None:
    generation = Generation.objects.get(pk=job_id)
    assert (generation.status, generation.engine) == ("succeeded", engine), generation.error


def answered_and_polled(client, path, body, shape, id_field, poll, engine) -> None:
    """A compatible API's job answer for ``body`` at ``path``, and the same job polled at
    ``poll`` (its id in the braces), each of ``shape``, the job run on ``engine``."""
    response = client.post(path, body, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert_shape(answer, shape)
    ran(answer[id_field], engine)
    assert_shape(client.get(poll.format(answer[id_field])).json(), shape)


def test_000_the_native_answer_echoes_every_field_the_document_shows(engine, api_key):
    """The document's client example: its files and data as it builds them, its key in the
    header; it reads ``metadata["denoising_strength"]`` back."""
    files = {"image": io.BytesIO(PHOTO), "mask": io.BytesIO(BLACK_INPAINTS)}
    data = {
        "prompt": "Your prompt here",
        "negative_prompt": "Negative prompt",
        "denoising_strength": 0.75,
    }
    response = Client().post(
        "/api/img2img", {**files, **data}, headers={"Authorization": f"Api-Key {api_key}"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert_shape(body, NATIVE)
    assert {key: body["metadata"][key] for key in data} == data
    ran(body["id"], engine)
    if engine == "classical":  # said, not dropped
        warned = {w["field"] for w in body["metadata"]["warnings"]}
        assert {"prompt", "negative_prompt", "denoising_strength"} <= warned


def test_001_the_sd_inpaint_answer_is_the_png_and_health_is_the_documents(engine, api_key):
    data = {
        "prompt": "a beautiful red rose",
        "negative_prompt": "blurry, low quality",
        "num_inference_steps": 4,
        "guidance_scale": 7.5,
        "seed": 42,
    }
    response = Client().post(
        "/sd-inpaint/inpaint",
        {"image": io.BytesIO(PHOTO), "mask": io.BytesIO(WHITE_INPAINTS), **data},
        headers={"Authorization": f"Api-Key {api_key}"},
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    png = b"".join(response.streaming_content) if response.streaming else response.content
    assert Image.open(io.BytesIO(png)).size == (96, 64)
    ran(response["X-Generation-Id"], engine)
    health = Client().get("/sd-inpaint/health")
    assert health.status_code == 200
    assert_shape(health.json(), SD_HEALTH)


def test_002_modelslab_processing_then_success_answers(
    engine, api_key, paused_worker, settings, local_server
):
    settings.IMG2IMG_WAIT_SECONDS = 0.2  # the worker is paused: the answer is "processing"
    body = {
        "key": api_key,
        "model_id": "lazymixv4-inpaint",
        "prompt": "a cat sitting on a bench",
        "negative_prompt": None,
        "init_image": f"{local_server}/input.png",
        "mask_image": base64.b64encode(WHITE_INPAINTS).decode(),
        "samples": "1",
        "steps": "4",
        "guidance_scale": 7.5,
        "strength": 0.7,
        "seed": None,
    }
    processing = APIClient().post("/api/v6/images/inpaint", body, format="json").json()
    assert processing["status"] == "processing", processing
    assert_shape(processing, MODELSLAB_PROCESSING)
    paused_worker.resume()
    fetch = processing["fetch_result"].removeprefix("http://testserver")
    deadline = time.monotonic() + 60
    while (answer := APIClient().post(fetch, {"key": api_key}, format="json").json())[
        "status"
    ] == "processing" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer["status"] == "success", answer
    assert_shape(answer, MODELSLAB_SUCCESS)
    assert answer["meta"]["strength"] == 0.7 and answer["meta"]["denoising_strength"] == 0.7
    ran(answer["id"], engine)


def test_003_fooocus_task_record_and_generate_mask_string(engine, keyed, local_server):
    params = {
        "prompt": "",
        "inpaint_additional_prompt": "a red ball",
        "inpaint_input_image": f"{local_server}/input.png",
        "inpaint_mask_image_upload": "data:image/png;base64,"
        + base64.b64encode(WHITE_INPAINTS).decode(),
    }
    answered_and_polled(
        keyed, "/v1/engine/generate", params, FOOOCUS_TASK, "task_id", "/tasks/{}", engine
    )
    mask = keyed.post(
        "/v1/tools/generate_mask", {"image": f"{local_server}/input.png"}, format="json"
    )
    assert mask.status_code == 200, mask.content
    encoded = mask.json()
    assert isinstance(encoded, str) and not encoded.startswith("data:")
    assert Image.open(io.BytesIO(base64.b64decode(encoded))).size == (96, 64)


def test_004_deepimage_job_answer(engine, keyed, local_server):
    body = {
        "url": f"{local_server}/input.png",
        "background": {
            "generate": {
                "description": "hands touching surfing board",
                "adapter_type": "inpainting",
                "ip_image2": f"{local_server}/mask.png",
                "controlnet_conditioning_scale": 0.5,
            }
        },
    }
    answered_and_polled(
        keyed, "/rest_api/process_result", body, DEEPIMAGE_JOB, "job", "/rest_api/result/{}", engine
    )
