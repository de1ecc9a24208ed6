"""Upscaling through AUTOMATIC1111's extras endpoints (issue 41, first part): Lanczos and
nearest need no weights; an output over UPSCALE_MAX_PIXELS is a 400 before the picture is
decoded; a batch is bounded; what does not run here (face restoration, a second upscaler) is
said in ``html_info``. webuiapi's own calls: tests/test_compat_a1111.py."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from inpainting.services import upscale as upscale_service
from tests.helpers import answer_json
from tests.images import gradient, png_bytes

pytestmark = pytest.mark.django_db

PICTURE = gradient(96, 64)


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def decoded(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def test_a_factor_upscales_by_lanczos_and_says_what_did_not_run(api):
    body = {
        "image": b64(png_bytes(PICTURE)),
        "upscaling_resize": 3,
        "upscaler_1": "Lanczos",
        "gfpgan_visibility": 0.5,
    }
    response = api.post("/sdapi/v1/extra-single-image", body, format="json")
    assert response.status_code == 200, response.content
    answer = answer_json(response)
    assert response["Content-Length"] == str(len(json.dumps(answer)))  # as streamed
    out = decoded(answer["image"])
    assert out.size == (288, 192)
    want = PICTURE.convert("RGB").resize((288, 192), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(out.convert("RGB")), np.asarray(want))
    assert "not run here: face restoration (GFPGAN)" in answer["html_info"]


def test_scale_to_with_and_without_crop(api):
    body = {
        "image": b64(png_bytes(PICTURE)),
        "resize_mode": 1,
        "upscaling_resize_w": 200,
        "upscaling_resize_h": 200,
    }
    cropped = answer_json(api.post("/sdapi/v1/extra-single-image", body, format="json"))
    assert decoded(cropped["image"]).size == (200, 200)
    body["upscaling_crop"] = False  # the covering size, the aspect ratio kept
    covering = answer_json(api.post("/sdapi/v1/extra-single-image", body, format="json"))
    assert decoded(covering["image"]).size == (300, 200)
    body["upscaling_resize_w"] = 400  # 4.2 times: more than 4
    refused = api.post("/sdapi/v1/extra-single-image", body, format="json")
    assert refused.status_code == 400 and "between 1 and 4" in refused.json()["detail"]


def test_a_batch_is_upscaled_alike_and_bounded(api):
    item = {"data": b64(png_bytes(PICTURE)), "name": "a.png"}
    body = {"imageList": [item, item], "upscaling_resize": 2, "upscaler_1": "Nearest"}
    response = api.post("/sdapi/v1/extra-batch-images", body, format="json")
    assert response.status_code == 200
    assert [decoded(i).size for i in answer_json(response)["images"]] == [(192, 128)] * 2
    body["imageList"] = [item] * 9
    refused = api.post("/sdapi/v1/extra-batch-images", body, format="json")
    assert refused.status_code == 400 and "At most 8 images" in refused.json()["detail"]


def test_an_unknown_upscaler_or_factor_is_a_clear_400(api):
    body = {"image": b64(png_bytes(PICTURE)), "upscaler_1": "R-ESRGAN 4x+"}
    response = api.post("/sdapi/v1/extra-single-image", body, format="json")
    assert response.status_code == 400
    assert "Unknown upscaler 'R-ESRGAN 4x+'" in response.json()["detail"]
    body = {"image": b64(png_bytes(PICTURE)), "upscaling_resize": 8}
    response = api.post("/sdapi/v1/extra-single-image", body, format="json")
    assert response.status_code == 400 and "between 1 and 4" in response.json()["detail"]


def test_an_output_over_the_limit_is_refused_before_any_pixel_work(api, monkeypatch):
    big = png_bytes(Image.new("RGB", (4096, 4096), (10, 20, 30)))  # the largest upload
    decodes = []
    real = upscale_service.decode_image
    monkeypatch.setattr(
        upscale_service, "decode_image", lambda *a, **k: decodes.append(1) or real(*a, **k)
    )
    body = {"image": b64(big), "upscaling_resize": 4}
    started = time.perf_counter()
    response = api.post("/sdapi/v1/extra-single-image", body, format="json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    assert "16384x16384 pixels; the limit is 67108864 pixels" in response.json()["detail"]
    assert decodes == []  # the header was read, the pixels never
    assert elapsed < 1.0, elapsed


def test_a_batch_over_the_limit_in_all_is_refused_before_any_picture_is_decoded(
    api, monkeypatch, settings
):
    settings.UPSCALE_MAX_PIXELS = 192 * 128 * 2 - 1  # one picture fits, two do not
    decodes = []
    real = upscale_service.decode_image
    monkeypatch.setattr(
        upscale_service, "decode_image", lambda *a, **k: decodes.append(1) or real(*a, **k)
    )
    item = {"data": b64(png_bytes(PICTURE))}
    body = {"imageList": [item, item], "upscaling_resize": 2}
    response = api.post("/sdapi/v1/extra-batch-images", body, format="json")
    assert response.status_code == 400
    assert "The 2 upscaled pictures would be 49152 pixels in all" in response.json()["detail"]
    assert decodes == []


def test_an_empty_batch_answers_no_pictures(api):
    response = api.post(
        "/sdapi/v1/extra-batch-images",
        {"imageList": [], "upscaling_resize": 2, "upscaler_1": "Lanczos"},
        format="json",
    )
    assert response.status_code == 200
    body = b"".join(response)
    assert json.loads(body)["images"] == [] and response["Content-Length"] == str(len(body))
