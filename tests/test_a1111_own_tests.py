"""AUTOMATIC1111's own API test requests (its ``test/`` folder: test_utils.py, test_img2img.py,
test_extras.py), replayed as its tests send them, with no credentials, against a live server
and a real worker of a stack with no diffusion model (the classical engine fills): 15 of the
17 answer 200; the two img2img requests without a mask need a diffusion model. They go to the
key in the path (ADR 8), the address of a client that sends no credentials. The pictures are
generated here (64 x 64, as A1111's test pictures)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import requests

from tests.images import box_mask, gradient, png_bytes
from tests.test_compat_a1111 import server_without_a_model  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

PICTURE = base64.b64encode(png_bytes(gradient(64, 64))).decode()
MASK = base64.b64encode(png_bytes(box_mask(64, 64, (16, 16, 47, 47), inpaint_white=True))).decode()

#: test_img2img.py's request body (its url_img2img fixture's JSON).
IMG2IMG = {
    "batch_size": 1,
    "cfg_scale": 7,
    "denoising_strength": 0.75,
    "eta": 0,
    "height": 64,
    "include_init_images": False,
    "init_images": [PICTURE],
    "inpaint_full_res": False,
    "inpaint_full_res_padding": 0,
    "inpainting_fill": 0,
    "inpainting_mask_invert": False,
    "mask": None,
    "mask_blur": 4,
    "n_iter": 1,
    "negative_prompt": "",
    "override_settings": {},
    "prompt": "example prompt",
    "resize_mode": 0,
    "restore_faces": False,
    "s_churn": 0,
    "s_noise": 1,
    "s_tmax": 0,
    "s_tmin": 0,
    "sampler_index": "Euler a",
    "seed": -1,
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "steps": 3,
    "styles": [],
    "subseed": -1,
    "subseed_strength": 0,
    "tiling": False,
    "width": 64,
}

#: test_extras.py's simple upscaling body.
EXTRAS = {
    "resize_mode": 0,
    "show_extras_results": True,
    "gfpgan_visibility": 0,
    "codeformer_visibility": 0,
    "codeformer_weight": 0,
    "upscaling_resize": 2,
    "upscaling_resize_w": 128,
    "upscaling_resize_h": 128,
    "upscaling_crop": True,
    "upscaler_1": "Lanczos",
    "upscaler_2": "None",
    "extras_upscaler_2_visibility": 0,
    "image": PICTURE,
}

#: test_utils.py's test_get_api_url, one request each.
LISTS = (
    "cmd-flags",
    "samplers",
    "upscalers",
    "sd-models",
    "hypernetworks",
    "face-restorers",
    "realesrgan-models",
    "prompt-styles",
    "embeddings",
)


Outcome = tuple[int, str]  # an answer's status and text, as a test of A1111's reads them


def outcome(response: requests.Response) -> Outcome:
    return response.status_code, response.text


def options_write(base: str) -> Outcome:
    """test_utils.py's test_options_write: read ``send_seed``, write its opposite, read it
    back, write the old value back; the outcome of the first step that is not as A1111's test
    expects (a 200 that lacks the value is a 0), else of the last."""
    url = f"{base}/sdapi/v1/options"
    read = requests.get(url, timeout=30)
    if read.status_code != 200 or "send_seed" not in read.json():
        return (read.status_code if read.status_code != 200 else 0), read.text
    before = read.json()["send_seed"]
    written = requests.post(url, json={"send_seed": not before}, timeout=30)
    if written.status_code != 200:
        return outcome(written)
    again = requests.get(url, timeout=30)
    if again.json().get("send_seed") != (not before):
        return 0, again.text
    return outcome(requests.post(url, json={"send_seed": before}, timeout=30))


def a1111_requests(base: str) -> dict[str, Callable[[], Outcome]]:
    """The 17 requests by the name of A1111's test, each giving its answer's outcome."""
    api = f"{base}/sdapi/v1"

    def post(path: str, body: dict) -> Callable[[], Outcome]:
        return lambda: outcome(requests.post(f"{api}/{path}", json=body, timeout=120))

    def get(path: str) -> Callable[[], Outcome]:
        return lambda: outcome(requests.get(f"{api}/{path}", timeout=30))

    return {
        "test_options_write": lambda: options_write(base),
        **{f"test_get_api_url[{name}]": get(name) for name in LISTS},
        "test_img2img_simple_performed": post("img2img", IMG2IMG),
        "test_inpainting_masked_performed": post("img2img", {**IMG2IMG, "mask": MASK}),
        "test_inpainting_with_inverted_masked_performed": post(
            "img2img", {**IMG2IMG, "mask": MASK, "inpainting_mask_invert": True}
        ),
        "test_img2img_sd_upscale_performed": post(
            "img2img",
            {**IMG2IMG, "script_name": "sd upscale", "script_args": ["", 8, "Lanczos", 2.0]},
        ),
        "test_simple_upscaling_performed": post("extra-single-image", EXTRAS),
        "test_png_info_performed": post("extra-single-image", {"image": PICTURE}),
        "test_interrogate_performed": post(
            "extra-single-image", {"image": PICTURE, "model": "clip"}
        ),
    }


def test_a1111s_own_api_tests_pass_15_of_17_without_a_diffusion_model(
    server_without_a_model,  # noqa: F811 - the fixture imported above
    api_key,
):
    base = f"{server_without_a_model}/k/{api_key}"
    outcomes = {name: request() for name, request in a1111_requests(base).items()}
    assert len(outcomes) == 17
    passed = [name for name, (status, _) in outcomes.items() if status == 200]
    failed = {name: status for name, (status, _) in outcomes.items() if status != 200}
    assert len(passed) == 15, outcomes
    # The two without a mask ask to repaint the whole picture, which needs a diffusion
    # (edit) model: a client error that says what is missing, not a failure of the server.
    assert failed == {
        "test_img2img_simple_performed": 400,
        "test_img2img_sd_upscale_performed": 400,
    }
    for name in failed:
        assert "needs a diffusion model" in outcomes[name][1], outcomes[name]
