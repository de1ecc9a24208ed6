"""IP-Adapters (issue 38): a reference picture steers an inpainting model, through the worker,
with a tiny random IP-Adapter and image encoder made for the tiny SD 1.5 model. It changes the
picture inside the mask only, scale 0 gives the picture without it, the next job is without
it, a re-run keeps it; ModelsLab's seed body with its three ``ip_adapter_*`` fields runs with
it; an adapter that is not installed is a 400 that lists the installed ones."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation
from inpainting.services.library import library_scan
from inpainting.testing.tiny_ip_adapter import write_tiny_ip_adapter
from tests.helpers import (
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_for_status,
)
from tests.images import box_mask, gradient, png_bytes
from tests.test_compat_modelslab import documented_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

NAME = "ip-adapter_sd15"
REFERENCE = png_bytes(gradient(40, 30).rotate(90, expand=True))


@pytest.fixture
def adapter(tiny_model, models_dir):
    """The tiny adapter in IP_ADAPTERS_DIR (under MODELS_DIR: gone again after the test)."""
    write_tiny_ip_adapter(tiny_model, settings.IP_ADAPTERS_DIR / NAME)
    library_scan()
    return NAME


def reference():
    return SimpleUploadedFile("reference.png", REFERENCE, "image/png")


def test_a_reference_picture_steers_the_inpainting_through_the_ip_adapter(api, user, adapter):
    listed = api.get("/api/ip-adapters").json()["ip_adapters"]
    assert [(a["name"], a["family"]) for a in listed] == [(NAME, "sd15")]
    plain = run_job(api)
    steered = run_job(
        api,
        ip_adapter=json.dumps({"name": NAME, "scale": 1}),
        reference_images=reference(),
    )
    zero = run_job(
        api, ip_adapter=json.dumps({"name": NAME, "scale": 0}), reference_images=reference()
    )
    after = run_job(api)
    assert steered.params["ip_adapter"] == {"name": NAME, "scale": 1.0}
    with steered.images.get(index=0).file.open("rb") as handle:  # the PNG's parameters
        written = json.loads(Image.open(io.BytesIO(handle.read())).info["dreamlayer"])
    assert written["ip_adapter"] == {"name": NAME, "scale": 1.0}
    assert steered.reference_links.count() == 1
    regenerated = effective_mask(
        Image.open(io.BytesIO(black_box_mask_png())), (96, 64), MaskOptions()
    )
    changed = (output_pixels(steered) != output_pixels(plain)).any(axis=-1)
    assert changed[regenerated == 255].mean() > 0.5  # steered inside the mask
    assert not changed[regenerated == 0].any()  # and nothing outside it (or its feather)
    assert np.array_equal(output_pixels(zero), output_pixels(plain))  # scale 0: no effect
    assert np.array_equal(output_pixels(after), output_pixels(plain))  # not left loaded
    # A re-run keeps the adapter and its reference: the same picture.
    rerun = api.post(f"/api/generations/{steered.pk}/rerun/").json()
    again = wait_for_status(rerun["id"], timeout=120)
    assert again.params["ip_adapter"] == steered.params["ip_adapter"]
    assert np.array_equal(output_pixels(again), output_pixels(steered))
    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/history/{steered.pk}/")
    assert page.status_code == 200 and b"IP-Adapter" in page.content


@pytest.mark.parametrize(
    "fields,field,words",
    [
        ({"ip_adapter": json.dumps({"name": "ip-adapter-plus_sdxl_vit-h"})}, "ip_adapter",
         "Unknown IP-Adapter 'ip-adapter-plus_sdxl_vit-h'; the IP-Adapters here are: "
         "ip-adapter_sd15"),
        ({"ip_adapter": json.dumps({"name": NAME})}, "reference_images",
         "reads one reference picture (reference_images); this request sent 0"),
        ({"ip_adapter": json.dumps({"name": NAME, "scale": 1.5})}, "ip_adapter",
         "ip_adapter.scale"),
        ({"reference_images": "yes"}, "reference_images", "through an IP-Adapter"),
    ],
)  # fmt: skip
def test_an_ip_adapter_request_that_cannot_run_is_a_400(api, adapter, fields, field, words):
    if fields.get("reference_images") == "yes":
        fields = {**fields, "reference_images": reference()}
    response = post_img2img(
        api, image_png(), black_box_mask_png(), prompt="x", engine="diffusers", **fields
    )
    assert response.status_code == 400, response.content
    assert words in " ".join(response.json()["errors"][field])
    assert not Generation.objects.exists()


def test_modelslab_seed_body_with_its_ip_adapter_fields(api_key, adapter, local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the test server is on loopback
    from tests.live import Handler

    mask = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))
    Handler.extra = {"/mask.png": mask, "/reference.png": REFERENCE}
    body = documented_body(
        api_key,
        f"{local_server}/image.png",
        f"{local_server}/mask.png",
        model_id=None,
        steps="4",
        seed=9,
        ip_adapter_id=NAME,
        ip_adapter_scale=0.8,
        ip_adapter_image=f"{local_server}/reference.png",
    )
    response = APIClient().post("/api/v6/images/inpaint", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "success"
    generation = Generation.objects.get()
    assert generation.params["ip_adapter"] == {"name": NAME, "scale": 0.8}
    assert generation.reference_links.count() == 1
    unknown = APIClient().post(
        "/api/v6/images/inpaint", {**body, "ip_adapter_id": "ip-adapter_sdxl"}, format="json"
    )
    assert unknown.status_code == 400
    assert "Unknown IP-Adapter 'ip-adapter_sdxl'" in unknown.json()["message"]
    alone = APIClient().post(
        "/api/v6/images/inpaint", {**body, "ip_adapter_image": None}, format="json"
    )
    assert alone.status_code == 400 and "go together" in alone.json()["message"]
    assert Generation.objects.count() == 1


def test_the_cli_takes_an_ip_adapter_and_its_reference(adapter, tmp_path):
    image, mask, ref = tmp_path / "in.png", tmp_path / "mask.png", tmp_path / "ref.png"
    image.write_bytes(image_png())
    mask.write_bytes(black_box_mask_png())
    ref.write_bytes(REFERENCE)
    pictures = {}
    for label, flags in (
        ("plain", []),
        ("steered", ["--ip-adapter", NAME, "--reference", str(ref)]),
        ("zero", ["--ip-adapter", f"{NAME}:0", "--reference", str(ref)]),
    ):
        out = tmp_path / f"{label}.png"
        call_command(
            "inpaint",
            *("--image", str(image), "--mask", str(mask), "--out", str(out)),
            *("--prompt", "a red rose", "--engine", "diffusers", "--seed", "5"),
            *("--steps", "4", *flags),
            stdout=io.StringIO(),
        )
        pictures[label] = np.asarray(Image.open(out).convert("RGB"))
    assert not np.array_equal(pictures["steered"], pictures["plain"])
    assert np.array_equal(pictures["zero"], pictures["plain"])
    with pytest.raises(CommandError, match="reads one reference picture"):
        call_command(
            "inpaint",
            *("--image", str(image), "--mask", str(mask), "--out", str(tmp_path / "x.png")),
            *("--prompt", "a rose", "--ip-adapter", NAME),
        )


def test_the_scan_refuses_what_cannot_run_as_an_ip_adapter(tiny_model, models_dir):
    root = settings.IP_ADAPTERS_DIR
    (root / "pickled").mkdir(parents=True)
    (root / "pickled" / "ip-adapter_sd15.bin").write_bytes(b"not loaded: a pickle")
    shutil.rmtree(write_tiny_ip_adapter(tiny_model, root / "bare") / "image_encoder")
    (root / "loose.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    refused = dict(library_scan().refused)
    assert "pickles are refused" in refused["ip-adapters/pickled"]
    assert "no image encoder" in refused["ip-adapters/bare"]
    assert "an IP-Adapter is a folder" in refused["ip-adapters/loose.safetensors"]
    assert APIClient().get("/api/ip-adapters").status_code == 401
