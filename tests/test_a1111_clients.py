"""The clients people point at an AUTOMATIC1111 server (issue 37), each replayed as its own
source sends it against a live server and a real worker (the tiny random model): its start-up
calls in its order, its way of switching the model, one inpaint with its own body, and what it
reads from the answers. Read from each client's source:

- openOutpaint (zero01101/openOutpaint, js/index.js and js/ui/tool/dream.js): a page that
  calls with ``fetch`` and no credentials, so through the key in the path; data URLs; a
  string seed; dozens of stray keys; ``POST /sdapi/v1/options/`` (with the slash) to switch
  the model; polls progress with ``skip_current_image``; interrupt with no body.
- stable-gimpfusion (ArtBIT/stable-gimpfusion): no credentials; every URL ends in ``?``;
  bare base64; width and height as floats; reads ``info.infotexts[i]`` and ``all_seeds[i]``.
- Cyanic SD-Krita (DrCyanide/cyanic-sd-krita): no credentials; ``/queue/status`` first as
  its health check; the model in ``override_settings`` of every request; ``inpaint_full_res``
  as 0; ``sampler_name`` blank; interrupt with ``{}``.
- SDAI (ShiftHackZ/Stable-Diffusion-Android): ``GET /`` as its health check; HTTP Basic sent
  only after a 401 asks for it (OkHttp's Authenticator); base64 broken into 76-character lines
  (Android's ``Base64.DEFAULT``); string seeds; reads ``info.seed``.
- Open WebUI: the A1111 lists with HTTP Basic from its server, then OpenAI's
  ``POST /v1/images/edits`` as multipart without a mask (with an edit model that is a 200:
  tests/test_edits.py; here, with none, a 400 that names what to install).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings
from PIL import Image

from inpainting.models import Generation
from tests.conftest import COMPAT_SERVER_LOG
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


def photo_png() -> bytes:
    return png_bytes(gradient(W, H))


def mask_png(*, inverted: bool = False) -> bytes:
    return png_bytes(box_mask(W, H, BOX, inpaint_white=not inverted))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pixels(encoded: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def check_inpainted(encoded: str) -> None:
    """The picture is the input's size, the box was repainted, the far corner kept exactly."""
    out, original = pixels(encoded), np.asarray(gradient(W, H))
    assert out.shape == original.shape
    assert np.array_equal(out[CORNERS], original[CORNERS])
    x0, y0, x1, y1 = BOX
    assert (out[y0:y1, x0:x1] != original[y0:y1, x0:x1]).any()


def key_not_logged(key: str) -> None:
    log = (Path(settings.DATA_DIR) / COMPAT_SERVER_LOG).read_text()
    assert key.partition(".")[2] not in log


def test_openoutpaint_starts_switches_model_and_inpaints_through_the_key_in_the_path(
    server, api_key
):
    host = f"{server}/k/{api_key}/".rstrip("/")  # openOutpaint strips the slash it was given
    web = requests.Session()  # fetch: no credentials, no cookies
    assert web.get(host + "/sdapi/v1/options", timeout=30).status_code == 200  # "online"
    config = web.get(host + "/sdapi/v1/options", timeout=30).json()
    assert config["img2img_color_correction"] is False and config["inpainting_mask_weight"] == 1
    fixed = {"img2img_color_correction": False, "inpainting_mask_weight": 1.0}
    assert web.post(host + "/sdapi/v1/options", json=fixed, timeout=30).status_code == 200
    styles = web.get(host + "/sdapi/v1/prompt-styles", timeout=30).json()
    samplers = [s["name"] for s in web.get(host + "/sdapi/v1/samplers", timeout=30).json()]
    upscalers = web.get(
        host + "/sdapi/v1/upscalers",
        headers={"Accept": "application/json", "Content-Type": "application/json"},
        timeout=30,
    ).json()
    models = web.get(host + "/sdapi/v1/sd-models", timeout=30).json()
    schedulers = web.get(host + "/sdapi/v1/schedulers", timeout=30).json()
    scripts = web.get(host + "/sdapi/v1/scripts", timeout=30).json()
    loras = web.get(host + "/sdapi/v1/loras", timeout=30).json()
    assert styles == [] and "DDIM" in samplers and loras == []
    assert [u["name"] for u in upscalers][:1] == ["None"]
    assert models and all(m["title"] for m in models)
    assert all("controlnet" not in s.lower() for s in scripts["img2img"])
    # "Switch model": its own trailing slash, the title from sd-models.
    title = models[0]["title"]
    switched = web.post(
        host + "/sdapi/v1/options/",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"sd_model_checkpoint": title}),
        timeout=30,
    )
    assert switched.status_code == 200
    assert web.get(host + "/sdapi/v1/options", timeout=30).json()["sd_model_checkpoint"] == title
    body = {
        # stableDiffusionData and the img2img tool's fields, stray keys included
        "prompt": "a red ball",
        "negative_prompt": "blurry",
        "seed": "1234",
        "cfg_scale": 7.0,
        "sampler_index": "DDIM",
        "scheduler": schedulers[0]["label"],
        "steps": 3,
        "denoising_strength": 0.7,
        "mask_blur": 0,
        "batch_size": 2,
        "n_iter": 1,
        "width": W,
        "height": H,
        "enable_hr": False,
        "restore_faces": False,
        "hr_scale": 2.0,
        "hr_upscaler": "None",
        "hr_second_pass_steps": 0,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
        "hr_square_aspect": False,
        "hr_denoising_strength": 0.7,
        "hr_fix_lock_px": 0,
        "upscale_x": 1,
        "enable_refiner": False,
        "styles": [],
        "outpainting_fill": 2,
        "inpainting_fill": 1,
        "image_cfg_scale": 0.5,
        "inpaint_full_res": False,
        "init_images": ["data:image/png;base64," + b64(photo_png())],
        "mask": "data:image/png;base64," + b64(mask_png()),
        "alwayson_scripts": {"Soft Inpainting": {"args": [True, 1, 0.5, 4, 0, 0.5, 2]}},
    }
    answer = web.post(
        host + "/sdapi/v1/img2img",
        headers={"Accept": "application/json", "Content-Type": "application/json"},
        data=json.dumps(body),
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert len(data["images"]) == 2
    for image in data["images"]:  # shown as "data:image/png;base64," + image
        check_inpainted(image)
    info = json.loads(data["info"])
    assert info["all_seeds"] == [1234, 1235]
    # Its soft-inpainting script switches soft inpainting on (its defaults: nothing ignored).
    assert Generation.objects.get(pk=info["dreamlayer_id"]).params["soft"] is True
    assert info["ignored"] == []
    progress = web.get(host + "/sdapi/v1/progress?skip_current_image=true", timeout=30).json()
    assert progress["progress"] == 0 and "eta_relative" in progress
    assert web.post(host + "/sdapi/v1/interrupt", timeout=30).status_code == 200
    # Without the key the same calls are refused; the key is in no log.
    assert web.get(f"{server}/sdapi/v1/options", timeout=30).status_code == 401
    key_not_logged(api_key)


def test_stable_gimpfusion_inpaints_with_an_inverted_mask_and_reads_infotexts(server, api_key):
    base = f"{server}/k/{api_key}"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def call(endpoint, body=None):
        url = base + endpoint + "?"  # base_url + endpoint + "?" + urlencode({})
        if body is None:
            return requests.get(url, headers=headers, timeout=180)
        return requests.post(url, headers=headers, data=json.dumps(body), timeout=180)

    options = call("/sdapi/v1/options").json()
    titles = [m["title"] for m in call("/sdapi/v1/sd-models").json()]
    cn_models = (call("/controlnet/model_list").json() or {}).get("model_list", [])
    assert options["sd_model_checkpoint"] in titles and cn_models == []
    assert call("/sdapi/v1/options", {"sd_model_checkpoint": titles[0]}).status_code == 200
    body = {
        "mask": b64(mask_png(inverted=True)),
        "inpaint_full_res": 1,
        "inpaint_full_res_padding": 10,
        "inpainting_mask_invert": 1,
        "resize_mode": 0,
        "init_images": [b64(photo_png())],
        "prompt": "a red ball",
        "negative_prompt": "",
        "denoising_strength": 0.8,
        "steps": 3,
        "cfg_scale": 7.5,
        "width": float(W),
        "height": float(H),
        "sampler_index": "Euler a",
        "batch_size": 1.0,
        "seed": 77,
    }
    answer = call("/sdapi/v1/img2img", body)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    info = json.loads(response["info"])
    for i, image in enumerate(response["images"]):
        check_inpainted(image)
        assert info["all_seeds"][i] == 77
        assert "Seed: 77" in info["infotexts"][i] and "Steps: 3" in info["infotexts"][i]


def test_cyanic_sd_krita_checks_the_queue_then_inpaints_with_its_overrides(server, api_key):
    host = f"{server}/k/{api_key}"

    def get(path):
        response = requests.get(host + path, timeout=30)  # errors swallowed: None
        return response.json() if response.ok else None

    assert get("/queue/status") is not None  # else "disconnected", and no further call
    models = get("/sdapi/v1/sd-models")
    vaes = get("/sdapi/v1/sd-vae")
    samplers = get("/sdapi/v1/samplers")
    for path in ("/sdapi/v1/upscalers", "/sdapi/v1/face-restorers", "/sdapi/v1/prompt-styles"):
        assert get(path) is not None, path
    scripts = get("/sdapi/v1/scripts")
    assert get("/sdapi/v1/loras") == [] and get("/sdapi/v1/hypernetworks") == []
    assert list(get("/sdapi/v1/embeddings")["loaded"]) == []
    options = get("/sdapi/v1/options")
    assert models and vaes == [] and samplers and options["sd_vae"] == "Automatic"
    names = [s.lower() for s in scripts["txt2img"] + scripts["img2img"]]
    assert not {"soft inpainting", "controlnet", "adetailer"} & set(names)
    body = {
        "init_images": [b64(photo_png())],
        "mask": b64(mask_png()),
        "mask_blur": 4,
        "inpainting_mask_invert": 0,
        "inpainting_fill": 1,
        "inpaint_full_res": 0,
        "inpaint_full_res_padding": 32,
        "prompt": "a red ball",
        "negative_prompt": "",
        "sampler_name": "",
        "steps": 3,
        "denoising_strength": 0.7,
        "cfg_scale": 7,
        "width": W,
        "height": H,
        "batch_size": 1,
        "n_iter": 1,
        "seed": -1,
        "subseed": -1,
        "subseed_strength": 0.0,
        "override_settings": {
            "sd_model_checkpoint": models[0]["title"],
            "sd_vae": options["sd_vae"],
            "img2img_color_correction": False,
        },
        "override_settings_restore_afterwards": False,
    }
    answer = requests.post(
        host + "/sdapi/v1/img2img",
        headers={"Content-Type": "application/json"},
        data=json.dumps(body),
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    info = data["info"] if isinstance(data["info"], dict) else json.loads(data["info"])
    parameters = data["parameters"]
    kept = parameters["batch_size"] * parameters["n_iter"]
    assert len(data["images"][:kept]) == 1 and not parameters.get("save_images")
    check_inpainted(data["images"][0])
    assert len(info["all_seeds"]) == 1 and info["all_seeds"][0] >= 0  # the layer's name
    progress = get("/sdapi/v1/progress")
    assert progress["state"]["skipped"] is False and progress["state"]["interrupted"] is False
    assert "current_image" in progress
    stop = requests.post(
        host + "/sdapi/v1/interrupt",
        headers={"Content-Type": "application/json"},
        data="{}",
        timeout=30,
    )
    assert stop.status_code == 200


def test_sdai_checks_the_server_then_answers_the_basic_challenge_and_inpaints(server, api_key):
    app = {"X-App-Version": "0.6.6"}

    def call(method, path, **kwargs):
        """OkHttp with an Authenticator: Basic is sent only when a 401 asks for it."""
        url = server + "/" + path
        response = requests.request(method, url, headers=app, timeout=180, **kwargs)
        if response.status_code == 401 and "Basic" in response.headers["WWW-Authenticate"]:
            response = requests.request(
                method, url, headers=app, auth=("sdai", api_key), timeout=180, **kwargs
            )
        return response

    assert call("GET", "").ok  # the health check: the base URL answers 2xx
    options = call("GET", "sdapi/v1/options").json()
    models = call("GET", "sdapi/v1/sd-models").json()
    assert any(m["title"] == options["sd_model_checkpoint"] for m in models)
    assert {"title", "model_name", "hash", "sha256", "filename", "config"} <= set(models[0])
    samplers = call("GET", "sdapi/v1/samplers").json()
    assert {"name", "aliases", "options"} <= set(samplers[0])
    for path in ("loras", "hypernetworks", "embeddings", "sd-modules", "scripts", "script-info"):
        assert call("GET", f"sdapi/v1/{path}").ok, path
    assert call("GET", "sdapi/v1/extensions").json() == []
    switched = call("POST", "sdapi/v1/options", json={"sd_model_checkpoint": models[0]["title"]})
    assert switched.ok
    assert call("GET", "sdapi/v1/options").json()["sd_model_checkpoint"] == models[0]["title"]
    wrapped = base64.encodebytes  # Base64.DEFAULT: a line break every 76 characters
    body = {
        "init_images": [wrapped(photo_png()).decode()],
        "include_init_images": True,
        "mask": wrapped(mask_png()).decode(),
        "inpainting_mask_invert": 0,
        "inpaint_full_res_padding": 32,
        "inpainting_fill": 1,
        "mask_blur": 4,
        "inpaint_full_res": True,
        "denoising_strength": 0.75,
        "prompt": "a red ball",
        "negative_prompt": "",
        "steps": 3,
        "cfg_scale": 7.0,
        "width": W,
        "height": H,
        "restore_faces": False,
        "seed": "4321",
        "subseed_strength": 0.0,
        "sampler_index": "Euler a",
    }
    assert "\n" in body["init_images"][0]
    answer = call("POST", "sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    check_inpainted(data["images"][0])
    info = json.loads(data["info"])
    assert info["seed"] == 4321 and info["subseed"] == -1 and info["all_seeds"] == [4321]
    assert call("POST", "sdapi/v1/interrupt").ok


def test_open_webui_lists_models_and_its_maskless_edit_names_what_to_install(server, api_key):
    basic = {"auth": ("openwebui", api_key), "timeout": 30}
    options = requests.get(f"{server}/sdapi/v1/options", **basic).json()
    models = requests.get(f"{server}/sdapi/v1/sd-models", **basic).json()
    assert options["sd_model_checkpoint"] in [m["title"] for m in models]
    edit = requests.post(
        f"{server}/v1/images/edits",
        headers={"Authorization": f"Bearer {api_key}"},
        files={"image": ("photo.png", photo_png(), "image/png")},
        data={
            "model": "gpt-image-1",
            "prompt": "make the sky purple",
            "n": "1",
            "size": f"{W}x{H}",
            "response_format": "b64_json",
        },
        timeout=60,
    )
    assert edit.status_code == 400, edit.text
    message = edit.json()["error"]["message"]
    assert "alpha" not in message.lower()
    assert "edit model" in message and "Qwen-Image-Edit" in message
    assert Generation.objects.count() == 0  # nothing was queued
