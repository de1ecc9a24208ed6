"""Clients from the package index, installed unchanged (pyproject's dev extra pins each
version), driven against a live server and a real worker (the tiny random model), issue 83:

- sd-backend-client 0.5.0 (IntraPaint's headless client for AUTOMATIC1111 / Forge): its
  defaults (sampler ``euler_ancestral``, scheduler ``normal``), its check of A1111's ``info``
  shape (``GenerationInfoData``), its cancel (an interrupt, reported as cancelled) and its
  upscale.
- modelslab-py 0.2.3 (ModelsLab's SDK): ``Community.inpainting``, ``Realtime.inpainting``,
  ``Image_editing.inpainting``, ``object_remover`` and ``outpainting``, each then ``fetch``ed
  from its own route (the client's base URL set to the server's, as its users point it).
- fooocus-api-python-client 1.0.0 (Fooocus-API's, konieshadow's): ``ping``, the model list,
  inpaint and outpaint through v1 (multipart files) and v2 (JSON base64), async with
  ``query-job``, ``job-queue``, and ``stop``.
- webuiapi 0.9.17: ``txt2img`` on the tiny model (text to image as an inpaint of an empty
  canvas); an interrupt at half a batch of 4 iterations returns the 2 finished images, a
  skip drops one iteration and the next goes on.
- openai 3.54: ``models.list()``, ``images.generate`` and ``models.retrieve()``, and its
  errors on a path not here.
"""

from __future__ import annotations

import base64
import io
import threading
import time

import fooocusapi_client.exceptions
import numpy as np
import openai
import pytest
import requests
import webuiapi
from fooocusapi_client import ApiClient, Configuration, DefaultApi
from fooocusapi_client.models import ImgInpaintOrOutpaintRequestJson, InputMask
from modelslab_py.core.apis.community import Community
from modelslab_py.core.apis.image_editing import Image_editing
from modelslab_py.core.apis.realtime import Realtime
from modelslab_py.core.client import Client as ModelsLabClient
from modelslab_py.schemas.community import Inpainting as CommunityInpainting
from modelslab_py.schemas.image_editing import (
    InpaintingSchema,
    ObjectRemovalSchema,
    OutpaintingSchema,
)
from modelslab_py.schemas.realtime import RealtimeInpaintingSchema
from PIL import Image
from sd_backend_client.api.a1111_webservice import A1111Webservice
from sd_backend_client.api.shared_data.diffusion_params import DiffusionParams
from sd_backend_client.api.shared_data.generation_handle import GenerationError, GenerationStatus

from accounts.services import api_key_create
from inpainting.models import Generation
from inpainting.services import images
from tests.images import box_mask, gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

W, H = 96, 64
BOX = (30, 18, 62, 44)
#: Far enough from the box that no blur or feather reaches: always the input's pixels.
CORNERS = (slice(0, 8), slice(0, 12))


@pytest.fixture
def server(compat_server):
    """The session's daphne for the compatible APIs (``tests/conftest.py``)."""
    return compat_server


def check_inpainted(image: Image.Image) -> None:
    """The picture is the input's size, the box was repainted, the far corner kept exactly."""
    out, original = np.asarray(image.convert("RGB")), np.asarray(gradient(W, H))
    assert out.shape == original.shape
    assert np.array_equal(out[CORNERS], original[CORNERS])
    x0, y0, x1, y1 = BOX
    assert (out[y0:y1, x0:x1] != original[y0:y1, x0:x1]).any()


def downloaded(link: str) -> Image.Image:
    """A picture of an answer's ``output``: a link that needs no key."""
    return Image.open(io.BytesIO(requests.get(link, timeout=30).content))


def sd_backend(server: str, key: str) -> A1111Webservice:
    """The client as IntraPaint's headless users make it: credentials given when asked (a 401)."""
    return A1111Webservice(server, credentials_provider=lambda: ("me", key))


def inpaint_params(**fields) -> DiffusionParams:
    """sd-backend-client's parameters of an inpaint of the box, "a red ball" (``fields``:
    the rest)."""
    return DiffusionParams(
        prompt="a red ball",
        init_images=[gradient(W, H)],
        mask=box_mask(W, H, BOX, inpaint_white=True),
        width=W,
        height=H,
        **fields,
    )


def test_sd_backend_client_inpaints_with_its_defaults_and_upscales(server, api_key):
    service = sd_backend(server, api_key)
    schedulers = [option.name for option in service.list_schedulers()]
    assert "normal" in schedulers and "karras" in schedulers
    assert service.get_capabilities().scheduler is True
    params = inpaint_params(steps=3, seed=77, batch_size=2)
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
    params = inpaint_params(steps=150)
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


def test_modelslab_py_inpaints_removes_and_outpaints_on_each_route_and_fetches(server, api_key):
    client = ModelsLabClient(api_key=api_key, fetch_retry=3, fetch_timeout=1)
    client.base_url = f"{server}/api/"  # https://modelslab.com/api/ otherwise
    photo = base64.b64encode(png_bytes(gradient(W, H))).decode()
    mask = base64.b64encode(png_bytes(box_mask(W, H, BOX, inpaint_white=True))).decode()
    common = {"prompt": "a red ball", "init_image": photo, "mask_image": mask, "seed": 5}
    calls = [
        (Community(client), lambda api: api.inpainting(CommunityInpainting(
            **common, num_inference_steps=3, samples=2))),
        (Realtime(client), lambda api: api.inpainting(RealtimeInpaintingSchema(
            **common, num_inference_steps=3))),
        (Image_editing(client), lambda api: api.inpainting(InpaintingSchema(
            **common, num_inference_steps=3))),
        (Image_editing(client), lambda api: api.object_remover(ObjectRemovalSchema(
            init_image=photo, mask_image=mask))),
    ]  # fmt: skip
    answers = []
    for api, call in calls:
        answer = call(api)
        assert answer["status"] == "success", answer
        fetched = api.fetch(answer["id"])  # its own route's fetch
        assert fetched["status"] == "success"
        # Each answer signs its links afresh (their hour counts from then): the same pictures.
        assert [downloaded(link).tobytes() for link in fetched["output"]] == [
            downloaded(link).tobytes() for link in answer["output"]
        ]
        answers.append(answer)
    for answer in answers:
        for link in answer["output"]:  # links that need no key
            check_inpainted(downloaded(link))
    assert len(answers[0]["output"]) == 2 and answers[0]["meta"]["num_inference_steps"] == 3
    removal = Generation.objects.get(pk=answers[3]["id"])
    assert removal.engine in ("classical", "lama") and removal.params["mode"] == "erase"
    assert removal.metadata["erase"] == {"remover": removal.engine, "dilate_pixels": 10}
    outpaint = Image_editing(client).outpainting(OutpaintingSchema(
        prompt="more sky", image=photo, width=W + 32, height=H + 16, overlap_width=4,
        num_inference_steps=3,
    ))  # fmt: skip
    assert outpaint["status"] == "success", outpaint
    out = np.asarray(
        Image.open(io.BytesIO(requests.get(outpaint["output"][0], timeout=30).content))
    )
    assert out.shape[:2] == (H + 16, W + 32)
    inner = out[8 + 4 : 8 + H - 4, 16 + 4 : 16 + W - 4, :3]  # the picture, past the overlap
    assert np.array_equal(inner, np.asarray(gradient(W, H))[4:-4, 4:-4])
    unserved = requests.post(
        f"{server}/api/v6/image_editing/nothing_here",
        json={"key": api_key, "init_image": "x" * 300_000},
        timeout=30,
    )
    assert unserved.status_code == 404 and "no route" in unserved.json()["message"]


def fooocus_api(server: str, key: str) -> DefaultApi:
    """The generated client as its users configure it: the host, and a header for the key
    (its operations declare no authentication, so a header of the ApiClient carries it)."""
    return DefaultApi(ApiClient(Configuration(host=server), "X-API-KEY", key))


def test_fooocus_api_client_pings_lists_inpaints_and_outpaints_on_v1_and_v2(
    server, api_key, tmp_path
):
    api = fooocus_api(server, api_key)
    assert api.ping_ping_get() == "pong"
    models = api.all_models_v1_engines_all_models_get()
    assert len(models.model_filenames) == 1 and models.lora_filenames == []
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    photo.write_bytes(png_bytes(gradient(W, H)))
    mask.write_bytes(png_bytes(box_mask(W, H, BOX, inpaint_white=True)))
    # v1: multipart, the files by path, as its client takes them
    v1 = api.img_inpaint_or_outpaint_v1_generation_image_inpaint_outpaint_post(
        input_image=str(photo), input_mask=str(mask), prompt="a red ball", image_seed=9,
        image_number=2,
    ).actual_instance  # fmt: skip
    assert [(r["seed"], r["finish_reason"]) for r in v1] == [("9", "SUCCESS"), ("10", "SUCCESS")]
    for result in v1:
        check_inpainted(downloaded(result["url"]))
    outpainted = api.img_inpaint_or_outpaint_v1_generation_image_inpaint_outpaint_post(
        input_image=str(photo), outpaint_selections=["Left", "Top"], outpaint_distance_left=16,
        prompt="more sky",
    ).actual_instance  # fmt: skip
    assert downloaded(outpainted[0]["url"]).size == (W + 16, H + H // 3)
    # v2: JSON, base64, with its model's defaults (styles, performance, a base model ...)
    photo64 = base64.b64encode(photo.read_bytes()).decode()
    mask64 = base64.b64encode(mask.read_bytes()).decode()
    body = ImgInpaintOrOutpaintRequestJson(
        input_image=photo64, input_mask=InputMask(mask64), prompt="a red ball", require_base64=True
    )
    v2 = api.img_inpaint_or_outpaint_v2_v2_generation_image_inpaint_outpaint_post(
        body
    ).actual_instance
    (only,) = v2
    check_inpainted(Image.open(io.BytesIO(base64.b64decode(only["base64"]))))
    right = ImgInpaintOrOutpaintRequestJson(
        input_image=photo64, outpaint_selections=["Right"], prompt="more sky"
    )
    v2_out = api.img_inpaint_or_outpaint_v2_v2_generation_image_inpaint_outpaint_post(
        right
    ).actual_instance
    assert downloaded(v2_out[0]["url"]).size == (W + W // 3, H)


def ended(api: DefaultApi, job_id: str):
    """The job's record from ``query_job``, polled as its clients poll, once it has ended."""
    deadline = time.monotonic() + 90
    record = api.query_job_v1_generation_query_job_get(job_id)
    while record.job_stage.value not in ("SUCCESS", "ERROR"):
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
        record = api.query_job_v1_generation_query_job_get(job_id)
    return record


def test_fooocus_api_client_runs_async_queries_and_stops_its_own_job(
    server, api_key, other_user, celery_worker
):
    """``async_process``: the job record at once, then ``query-job`` until it ends; the queue
    counts the caller's own jobs; ``stop`` ends the caller's running job (reported as an
    error stage, ``USER_CANCEL``); another user's job id is a 404."""
    api = fooocus_api(server, api_key)
    photo64 = base64.b64encode(png_bytes(gradient(W, H))).decode()
    mask64 = base64.b64encode(png_bytes(box_mask(W, H, BOX, inpaint_white=True))).decode()
    quick = ImgInpaintOrOutpaintRequestJson(
        input_image=photo64, input_mask=InputMask(mask64), prompt="a red ball", async_process=True
    )
    job = api.img_inpaint_or_outpaint_v2_v2_generation_image_inpaint_outpaint_post(
        quick
    ).actual_instance
    assert job["job_stage"] in ("WAITING", "RUNNING", "SUCCESS") and job["job_id"]
    record = ended(api, job["job_id"])
    assert record.job_stage.value == "SUCCESS" and record.job_progress == 100
    result = record.job_result.actual_instance
    check_inpainted(downloaded(result[0]["url"]))
    queue = api.job_queue_v1_generation_job_queue_get()
    assert queue.running_size == 0 and queue.finished_size >= 1
    assert queue.last_job_id.actual_instance == job["job_id"]
    _, other_key = api_key_create(user=other_user, name="other")
    with pytest.raises(fooocusapi_client.exceptions.NotFoundException):
        fooocus_api(server, other_key).query_job_v1_generation_query_job_get(job["job_id"])
    # A job stopped before it ends: held in the queue (the worker paused), so the stop
    # always comes first.
    celery_worker.pause()
    try:
        started = api.img_inpaint_or_outpaint_v2_v2_generation_image_inpaint_outpaint_post(
            quick
        ).actual_instance
        assert started["job_stage"] == "WAITING"
        assert api.job_queue_v1_generation_job_queue_get().running_size == 1
        assert api.stop_v1_generation_stop_post().msg == "success"
    finally:
        celery_worker.resume()
    record = ended(api, started["job_id"])
    assert record.job_stage.value == "ERROR"
    assert record.job_result.actual_instance[0]["finish_reason"] == "USER_CANCEL"


def test_webuiapi_txt2img_and_the_openai_sdks_generate_paint_a_new_picture(server, api_key):
    """Text to image (openOutpaint's Dream over an empty canvas, Open WebUI's generation) as
    an inpaint of an empty canvas of the size asked for, every pixel painted by the tiny
    model; A1111's ``info`` and OpenAI's answer as for an edit."""
    api = webuiapi.WebUIApi(baseurl=f"{server}/sdapi/v1", username="me", password=api_key)
    result = api.txt2img(prompt="a red ball", width=64, height=48, steps=3, seed=21,
                         batch_size=2, enable_hr=True)  # fmt: skip
    assert [image.size for image in result.images] == [(64, 48), (64, 48)]
    blank = np.full((48, 64, 3), images.BLANK, np.uint8)
    for image in result.images:  # no pixel of the empty canvas is left as it was
        assert (np.asarray(image.convert("RGB")) != blank).any(axis=-1).all()
    info = result.info
    assert info["all_seeds"] == [21, 22] and info["sd_vae_hash"] is None
    assert (info["width"], info["height"], info["steps"]) == (64, 48, 3)
    assert "enable_hr" in info["ignored"][0] and "init_images" not in result.parameters
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0)
    made = client.images.generate(prompt="a red ball", size="64x48", n=1, model="gpt-image-1")
    picture = Image.open(io.BytesIO(base64.b64decode(made.data[0].b64_json)))
    assert picture.size == (64, 48) and made.size == "64x48"
    assert (np.asarray(picture.convert("RGB")) != blank).any(axis=-1).all()


def _a1111_batch(api: webuiapi.WebUIApi, outcome: dict, n_iter: int) -> threading.Thread:
    """img2img of ``n_iter`` iterations (a job each, in order), each long enough to interrupt
    (about a second on the tiny model), on a thread; its result (or error) in ``outcome``."""

    def generate():
        try:
            outcome["result"] = api.img2img(
                images=[gradient(W, H)], mask_image=box_mask(W, H, BOX, inpaint_white=True),
                prompt="a red ball", steps=60, denoising_strength=1.0, seed=40,
                n_iter=n_iter, width=W, height=H,
            )  # fmt: skip
        except RuntimeError as exc:
            outcome["error"] = exc.args

    thread = threading.Thread(target=generate)
    thread.start()
    return thread


def _when_iteration(api: webuiapi.WebUIApi, index: int) -> dict:
    """The caller's progress once iteration ``index`` (0-based) is running."""
    deadline = time.monotonic() + 120
    while True:
        progress = api.get_progress()
        state = progress["state"]
        if state["job_no"] >= index and state["sampling_step"] > 0:
            return progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)


def test_webuiapi_interrupt_at_half_a_batch_returns_the_finished_images(server, api_key):
    api = webuiapi.WebUIApi(baseurl=f"{server}/sdapi/v1", username="me", password=api_key)
    outcome: dict = {}
    thread = _a1111_batch(api, outcome, 4)
    progress = _when_iteration(api, 2)
    assert 0.5 <= progress["progress"] < 0.75  # 2 of 4 done, the third under way
    api.interrupt()
    thread.join(120)
    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert len(result.images) == 2 and result.info["all_seeds"] == [40, 41]
    assert "interrupted" in result.info
    for image in result.images:
        check_inpainted(image)
    jobs = Generation.objects.filter(owner__username="alice").order_by("created_at")
    statuses = [job.status for job in jobs if job.metadata.get("sequence")]
    assert statuses[-4:] == ["succeeded", "succeeded", "cancelled", "cancelled"]


def test_webuiapi_skip_drops_the_current_iteration_and_the_others_go_on(server, api_key):
    api = webuiapi.WebUIApi(baseurl=f"{server}/sdapi/v1", username="me", password=api_key)
    outcome: dict = {}
    thread = _a1111_batch(api, outcome, 3)
    _when_iteration(api, 1)
    api.skip()
    thread.join(120)
    result = outcome["result"]
    assert result.info["all_seeds"] == [40, 42] and len(result.images) == 2
    assert "interrupted" in result.info  # one iteration was skipped
