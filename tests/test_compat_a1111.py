"""AUTOMATIC1111's API driven by its own Python client, ``webuiapi``, unchanged, against a live
server and a real worker (the tiny random inpainting model): pixels, fields, progress and
interrupt on the caller's own job only, and A1111's error body."""

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import webuiapi
from django.conf import settings
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from inpainting.answers import a1111
from inpainting.engine import InpaintResult, Resize
from inpainting.engine.images import resize_to
from inpainting.models import Generation
from inpainting.services import generations, runs
from inpainting.services.library import library_scan
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests.conftest import child_env
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status
from tests.images import gradient, png_bytes
from tests.live import daphne_server
from tests.test_controlnet import controlnet_folder, library  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
BOX = (30, 18, 62, 44)


@pytest.fixture
def server(compat_server):
    """The session's daphne for the compatible APIs (``tests/conftest.py``)."""
    return compat_server


def client(server: str, key: str) -> webuiapi.WebUIApi:
    """As A1111's README shows it: the server's address, and --api-auth's user and password
    (the API key; any user name)."""
    return webuiapi.WebUIApi(baseurl=f"{server}/sdapi/v1", username="me", password=key)


def white_box_mask(size=(96, 64), box=BOX) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_webuiapi_img2img_repaints_the_white_area_and_keeps_the_rest(server, api_key):
    api = client(server, api_key)
    image, mask = gradient(96, 64), white_box_mask()
    result = api.img2img(
        images=[image],
        mask_image=mask,
        prompt="a red ball",
        negative_prompt="blurry",
        inpainting_fill=1,
        inpaint_full_res=True,
        inpaint_full_res_padding=8,
        mask_blur=0,
        denoising_strength=0.9,
        seed=1234,
        steps=4,
        cfg_scale=6.5,
        width=96,
        height=64,
    )
    out, original = pixels(result.image), pixels(image)
    assert out.shape == original.shape
    keep = np.asarray(mask) == 0
    assert np.array_equal(out[keep], original[keep])  # exactly, outside the mask
    assert (out[~keep] != original[~keep]).any(axis=-1).mean() > 0.5
    info = result.info
    assert info["all_seeds"] == [1234] and info["seed"] == 1234
    assert info["sampler_name"] == "Euler a" and info["scheduler"] == "automatic"
    assert (info["steps"], info["cfg_scale"], info["width"], info["height"]) == (4, 6.5, 96, 64)
    assert info["extra_generation_params"]["Masked content"] == "original"
    assert info["infotexts"][0].startswith("a red ball\nNegative prompt: blurry\nSteps: 4")
    assert result.parameters["prompt"] == "a red ball" and result.parameters["init_images"] is None
    generation = Generation.objects.get(pk=info["dreamlayer_id"])
    assert generation.client == "a1111" and generation.engine == "diffusers"
    params = generation.params
    assert (params["inpaint_area"], params["padding"], params["scheduler"]) == (
        "masked",
        8,
        "Euler a",
    )
    assert params["denoising_strength"] == 0.9 and params["mask_mode"] == "white_inpaints"
    # png-info reads the infotext back, as A1111 parses it.
    parsed = api.png_info(result.image)
    assert parsed.info.startswith("a red ball")
    response = requests.post(
        f"{server}/sdapi/v1/png-info",
        json={"image": webuiapi.raw_b64_img(result.image)},
        auth=("me", api_key),
        timeout=30,
    )
    fields = response.json()["parameters"]
    assert (fields["Prompt"], fields["Seed"], fields["Size-1"], fields["Steps"]) == (
        "a red ball",
        "1234",
        "96",
        "4",
    )


def test_width_height_and_resize_mode_as_a1111_applies_them(server, api_key):
    """The output is width x height: the input (and its mask, alike) cropped to cover it."""
    api = client(server, api_key)
    image, mask = gradient(96, 64), white_box_mask()
    result = api.img2img(
        images=[image], mask_image=mask, prompt="a cat", resize_mode=1, width=80, height=80,
        mask_blur=0, steps=2, seed=5, inpainting_fill=0, batch_size=2,
    )  # fmt: skip
    assert [i.size for i in result.images] == [(80, 80), (80, 80)]
    assert result.info["all_seeds"] == [5, 6]
    expected = pixels(resize_to(image, Resize(80, 80, "crop")))
    keep = np.asarray(resize_to(mask, Resize(80, 80, "crop"))) == 0
    for out in result.images:
        assert np.array_equal(pixels(out)[keep], expected[keep])
    generation = Generation.objects.get(pk=result.info["dreamlayer_id"])
    assert generation.params["resize"] == {"width": 80, "height": 80, "mode": "crop"}
    assert generation.params["masked_content"] == "fill"  # inpainting_fill 0
    assert generation.source.width == 96  # the upload is kept as sent


def test_the_model_lists_and_options(server, api_key):
    api = client(server, api_key)
    samplers = [s["name"] for s in api.get_samplers()]
    assert "Euler a" in samplers and "DPM++ 2M Karras" in samplers
    assert {"automatic", "karras", "normal"} <= {s["name"] for s in api.get_schedulers()}
    models = api.get_sd_models()
    assert len(models) == 1 and models[0]["title"]
    assert api.get_options()["samples_format"] == "png"
    assert api.get_progress()["state"]["job_count"] == 0
    # Options a client writes are kept for its user and read back (A1111's own API test).
    api.set_options({"send_seed": False, "samples_format": "jpg"})
    options = api.get_options()
    assert options["send_seed"] is False and options["samples_format"] == "png"  # png here
    assert options["send_size"] is True  # A1111's default, never written
    assert options["dreamlayer_not_acted_on"] == ["send_seed", "send_size"]


def test_errors_in_a1111s_shape(server, api_key):
    image = base64.b64encode(png_bytes(gradient(96, 64))).decode()
    body = {"init_images": [image], "prompt": "x", "batch_size": 3, "n_iter": 2}
    wrong = requests.post(
        f"{server}/sdapi/v1/img2img", json=body, auth=("me", "dl_x.y"), timeout=30
    )
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert wrong.json()["detail"] == "Invalid API key." and wrong.json()["error"] == "Unauthorized"
    too_many = requests.post(
        f"{server}/sdapi/v1/img2img", json=body, auth=("me", api_key), timeout=30
    )
    assert too_many.status_code == 400
    assert too_many.json()["detail"] == "batch_size: batch_size x n_iter is 6; at most 4 here."
    assert "batch_size" in too_many.json()["errors"]
    body.update(batch_size=1, n_iter=1, resize_mode=9)
    unknown = requests.post(
        f"{server}/sdapi/v1/img2img", json=body, auth=("me", api_key), timeout=30
    )
    assert unknown.status_code == 400 and "resize_mode" in unknown.json()["errors"]
    with pytest.raises(RuntimeError) as raised:  # webuiapi raises (status, text) on a non-200
        client(server, "dl_x.y").img2img(images=[gradient(96, 64)], prompt="x")
    assert raised.value.args[0] == 401
    assert Generation.objects.count() == 0


def test_an_unknown_sampler_or_schedule_falls_back_as_a1111_does(server, api_key):
    """A1111 1.10 runs its default sampler for a name it does not know, and ``automatic`` for
    a schedule; ``normal`` (sd-backend-client's default) is A1111's uniform schedule, the
    sampler's own here. Each fallback is a warning in ``info``, the job runs."""
    api = client(server, api_key)
    common = {"images": [gradient(96, 64)], "mask_image": white_box_mask(), "prompt": "a rose",
              "steps": 2, "width": 96, "height": 64}  # fmt: skip
    fell = api.img2img(**common, sampler_name="Not A Sampler", scheduler="exponential").info
    assert [w["field"] for w in fell["warnings"]] == ["scheduler", "sampler_name"]
    assert "Not A Sampler" in fell["warnings"][1]["message"] and fell["scheduler"] == "automatic"
    assert fell["sampler_name"] and fell["sd_vae_hash"] is None
    assert Generation.objects.get(pk=fell["dreamlayer_id"]).params["scheduler"] is None
    normal = api.img2img(**common, sampler_name="Euler a", scheduler="normal").info
    assert normal["warnings"] == [] and normal["scheduler"] == "automatic"
    karras = api.img2img(**common, sampler_name="Euler", scheduler="Karras").info
    assert [w["field"] for w in karras["warnings"]] == ["scheduler"]
    assert karras["sampler_name"] == "Euler" and karras["scheduler"] == "automatic"
    assert [s["name"] for s in api.get_schedulers()] == list(a1111.SCHEDULES)


def test_progress_and_interrupt_act_on_the_callers_own_job(server, api_key, other_user):
    """Two users: progress shows each their own job (with a live preview while it runs);
    another user's interrupt leaves it running, its owner's stops it, and the client gets a
    result (no exception), as from A1111."""
    from accounts.services import api_key_create

    _, other_key = api_key_create(user=other_user, name="other")
    mine, theirs = client(server, api_key), client(server, other_key)
    outcome = {}

    def generate():
        try:
            outcome["result"] = mine.img2img(
                images=[gradient(96, 64)], mask_image=white_box_mask(), prompt="a rose",
                steps=100, width=96, height=64,
            )  # fmt: skip
        except RuntimeError as exc:
            outcome["error"] = exc.args

    thread = threading.Thread(target=generate)
    thread.start()
    deadline = time.monotonic() + 60
    progress = mine.get_progress()
    while not progress["current_image"]:  # a preview every 5 steps
        assert time.monotonic() < deadline, progress
        time.sleep(0.1)
        progress = mine.get_progress()
    generation = Generation.objects.get(client="a1111")
    assert progress["state"]["job"] == str(generation.pk) and progress["state"]["job_count"] == 1
    # Denoising strength 0.75 (webuiapi's default) runs 75 of the 100 steps, as in A1111.
    assert 0 < progress["progress"] < 1 and progress["state"]["sampling_steps"] == 75
    preview = Image.open(io.BytesIO(base64.b64decode(progress["current_image"])))
    assert preview.format == "PNG" and min(preview.size) > 0
    # The other user sees nothing of it, and cannot stop it.
    assert theirs.get_progress()["state"] == {**theirs.get_progress()["state"], "job": "",
                                              "job_count": 0}  # fmt: skip
    theirs.interrupt()
    theirs.skip()
    time.sleep(0.5)
    generation.refresh_from_db()
    assert generation.status == "running"
    mine.interrupt()
    thread.join(60)
    assert wait_for_status(generation.pk).status == "cancelled"
    # As A1111: an interrupted img2img is a 200 with the images finished before it (none here)
    assert "error" not in outcome, outcome
    assert outcome["result"].images == []
    assert outcome["result"].info["interrupted"].startswith("Interrupted")
    assert mine.get_progress()["state"]["job_count"] == 0


@pytest.mark.usefixtures("library")
def test_a_controlnet_unit_and_the_checkpoint_map_onto_the_library(server, api_key):
    """``alwayson_scripts`` ControlNet units run on the library's ControlNet of that name,
    ``override_settings.sd_model_checkpoint`` picks the library model (A1111's titles with
    their hash in brackets); other scripts are accepted and named as ignored."""
    api = client(server, api_key)
    unit = webuiapi.ControlNetUnit(
        model="inpaint-cn [0123abcd]", module="inpaint_only", weight=0.5, guidance_end=0.8,
        image=gradient(96, 64),
    )  # fmt: skip
    result = api.img2img(
        images=[gradient(96, 64)], mask_image=white_box_mask(), prompt="a rose", steps=2,
        width=96, height=64, controlnet_units=[unit], alwayson_scripts={"ADetailer": {"args": []}},
        override_settings={"sd_model_checkpoint": "alpha [0123456789]"},
    )  # fmt: skip
    generation = Generation.objects.get(pk=result.info["dreamlayer_id"])
    assert generation.params["controlnet"] == {
        "name": "inpaint-cn",
        "conditioning_scale": 0.5,
        "guidance_start": 0.0,
        "guidance_end": 0.8,
    }
    assert generation.params["model"] == "alpha" and result.info["sd_model_name"] == "alpha"
    assert result.info["ignored"] == [
        "script ADetailer",
        "ControlNet unit image (the inpaint ControlNet reads the input)",
    ]
    assert "ControlNet 0: " in result.info["infotexts"][0]
    with pytest.raises(RuntimeError) as unknown:
        api.img2img(
            images=[gradient(96, 64)], mask_image=white_box_mask(), prompt="a rose",
            controlnet_units=[webuiapi.ControlNetUnit(model="canny-cn")],
            alwayson_scripts={},  # webuiapi writes the units into its (shared) default dict
        )  # fmt: skip
    assert unknown.value.args[0] == 400 and "Unknown ControlNet 'canny-cn'" in unknown.value.args[1]


def test_plain_img2img_and_a1111s_own_mask_conventions(server, api_key):
    """No mask: plain img2img from the picture (inpainting_fill 0 has nothing to fill from);
    an RGBA mask reads as A1111 reads it: opaque strokes on a clear layer are inpainted;
    ``inpainting_mask_invert`` as a boolean too."""
    api = client(server, api_key)
    plain = api.img2img(images=[gradient(96, 64)], prompt="a rose", steps=2, width=96, height=64)
    generation = Generation.objects.get(pk=plain.info["dreamlayer_id"])
    assert generation.params["masked_content"] == "original"
    assert (pixels(plain.image) != pixels(gradient(96, 64))).any(axis=-1).mean() > 0.5
    strokes = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    ImageDraw.Draw(strokes).rectangle(BOX, fill=(255, 255, 255, 255))
    result = api.img2img(images=[gradient(96, 64)], mask_image=strokes, prompt="a rose", steps=2,
                         width=96, height=64, mask_blur=0)  # fmt: skip
    keep = np.asarray(white_box_mask()) == 0
    out, original = pixels(result.image), pixels(gradient(96, 64))
    assert np.array_equal(out[keep], original[keep]) and (out[~keep] != original[~keep]).any()
    body = {
        "init_images": [webuiapi.raw_b64_img(gradient(96, 64))],
        "mask": webuiapi.raw_b64_img(white_box_mask()),
        "prompt": "a rose", "steps": 2, "width": 96, "height": 64, "mask_blur": 0,
        "inpainting_mask_invert": True,
    }  # fmt: skip
    inverted = requests.post(
        f"{server}/sdapi/v1/img2img", json=body, auth=("me", api_key), timeout=60
    )
    assert inverted.status_code == 200, inverted.text
    out = pixels(Image.open(io.BytesIO(base64.b64decode(inverted.json()["images"][0]))))
    assert np.array_equal(out[~keep], original[~keep])  # the box is kept now


def test_basic_credentials_from_another_site_are_refused(server, api_key):
    """A browser that was given the key once sends it to this host from any page: a request
    another site makes (a form posting to /interrupt) is refused; scripts send no such header."""
    forged = requests.post(
        f"{server}/sdapi/v1/interrupt",
        auth=("me", api_key),
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        timeout=30,
    )
    assert forged.status_code == 401 and "another site" in forged.json()["detail"]
    assert (
        requests.post(f"{server}/sdapi/v1/interrupt", auth=("me", api_key), timeout=30).json() == {}
    )
    malformed = requests.get(
        f"{server}/sdapi/v1/options", headers={"Authorization": "Basic %%%"}, timeout=30
    )
    assert malformed.status_code == 401 and malformed.json()["detail"]


@pytest.mark.timeout(120)
def test_malformed_controlnet_units_and_deep_json_are_400s(server, api_key):
    """Every malformed unit is a 400 naming it (one once hung its request for ever: the
    error lookup raised StopIteration inside a thread's future); a body nested deeper than
    the JSON decoder goes is a parse error, not a 500."""
    image = webuiapi.raw_b64_img(gradient(96, 64))
    unit = {"model": "inpaint-cn", "enabled": True}
    cases = {
        "[null]": [None],
        "[[]]": [[]],
        "[true]": [True],
        "weight x": [{"weight": "x", "model": "inpaint-cn"}],
        "int, null": [1, None, "x"],
        "two keys": None,
    }
    for name, args in cases.items():
        scripts = (
            {"controlnet": {"args": [unit]}, "ControlNet": {"args": [unit]}}
            if args is None
            else {"controlnet": {"args": args}}
        )
        body = {"init_images": [image], "prompt": "x", "alwayson_scripts": scripts}
        response = requests.post(
            f"{server}/sdapi/v1/img2img", json=body, auth=("me", api_key), timeout=30
        )
        assert response.status_code == 400, (name, response.text[:300])
        assert response.json()["detail"].startswith("alwayson_scripts: "), name
    assert (
        "units[0]: This field may not be null."
        in requests.post(
            f"{server}/sdapi/v1/img2img",
            json={"init_images": [image], "alwayson_scripts": {"controlnet": {"args": [None]}}},
            auth=("me", api_key),
            timeout=30,
        ).json()["detail"]
    )
    deep = '{"init_images": ["x"], "override_settings": ' + '{"a": ' * 50000 + "1" + "}" * 50001
    response = requests.post(
        f"{server}/sdapi/v1/img2img",
        data=deep,
        headers={"Content-Type": "application/json"},
        auth=("me", api_key),
        timeout=30,
    )
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]
    assert Generation.objects.count() == 0


def test_img2img_with_an_edit_model_edits_by_words(server, api_key, edit_library):
    """The checkpoint an A1111 client picks may be an edit model: img2img without a mask edits
    the whole picture by the prompt at its size; with a mask, only inside it."""
    api = client(server, api_key)
    kontext = {"sd_model_checkpoint": "kontext"}
    whole = api.img2img(images=[gradient(96, 64)], prompt="make it winter", steps=2,
                        width=96, height=64, override_settings=kontext)  # fmt: skip
    generation = Generation.objects.get(pk=whole.info["dreamlayer_id"])
    assert (generation.model_name, generation.metadata["edit"]) == ("kontext", "whole")
    original = pixels(gradient(96, 64))
    assert (pixels(whole.image) != original).any(axis=-1).mean() > 0.9
    masked = api.img2img(images=[gradient(96, 64)], mask_image=white_box_mask(), mask_blur=0,
                         prompt="a red door", steps=2, width=96, height=64,
                         override_settings=kontext)  # fmt: skip
    assert Generation.objects.get(pk=masked.info["dreamlayer_id"]).metadata["edit"] == "masked"
    keep = np.asarray(white_box_mask()) == 0
    out = pixels(masked.image)
    assert np.array_equal(out[keep], original[keep]) and (out[~keep] != original[~keep]).any()


def test_webuiapi_lists_the_upscalers_and_upscales_one_picture(server, api_key):
    api = client(server, api_key)
    names = [u["name"] for u in api.get_upscalers()]
    assert {"None", "Lanczos", "Nearest"} <= set(names)
    picture = gradient(96, 64)
    result = api.extra_single_image(picture, upscaling_resize=2, upscaler_1="Lanczos")
    assert result.image.size == (192, 128)
    want = picture.convert("RGB").resize((192, 128), Image.Resampling.LANCZOS)
    assert np.abs(pixels(result.image).astype(int) - pixels(want).astype(int)).max() <= 1
    # "Scale to" with crop: the covering size, then the middle.
    result = api.extra_single_image(
        picture, resize_mode=1, upscaling_resize_w=200, upscaling_resize_h=200, upscaler_1="None"
    )
    assert result.image.size == (200, 200)


def test_webuiapi_upscales_with_a_super_resolution_model_of_the_library(
    server, api_key, models_dir
):
    """A model of UPSCALERS_DIR is listed by its name without the suffix, and runs as an
    upscale job on the worker (in the history); a batch refuses it with the reason."""
    write_tiny_real_esrgan(Path(settings.UPSCALERS_DIR) / "tiny-RealESRGAN_x4plus.safetensors")
    library_scan()
    api = client(server, api_key)
    listed = {u["name"]: u for u in api.get_upscalers()}
    tiny = listed["tiny-RealESRGAN_x4plus"]
    assert (tiny["model_name"], tiny["scale"]) == ("ESRGAN", 4)
    assert tiny["model_path"] == "tiny-RealESRGAN_x4plus.safetensors"  # no machine path
    # A1111's Real-ESRGAN list (its own API tests ask for it) names the same model.
    realesrgan = requests.get(
        f"{server}/sdapi/v1/realesrgan-models", auth=("me", api_key), timeout=30
    ).json()
    assert realesrgan == [
        {
            "name": "tiny-RealESRGAN_x4plus",
            "path": "tiny-RealESRGAN_x4plus.safetensors",
            "scale": 4,
        }
    ]
    result = api.extra_single_image(
        gradient(96, 64), upscaling_resize=3, upscaler_1="tiny-RealESRGAN_x4plus"
    )
    assert result.image.size == (288, 192)
    assert result.info == "Upscaler: tiny-RealESRGAN_x4plus"
    job = Generation.objects.get(engine="upscale")
    assert (job.client, job.model_name) == ("a1111", "tiny-RealESRGAN_x4plus.safetensors")
    # A client that sends its request again with the same Idempotency-Key gets the same job.
    body = {
        "image": base64.b64encode(png_bytes(gradient(96, 64))).decode(),
        "upscaling_resize": 2,
        "upscaler_1": "tiny-RealESRGAN_x4plus",
    }
    sent = [
        requests.post(
            f"{server}/sdapi/v1/extra-single-image",
            json=body,
            auth=("me", api_key),
            headers={"Idempotency-Key": "extras-1"},
            timeout=120,
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in sent] == [200, 200], sent[-1].text[:300]
    assert sent[0].json()["image"] == sent[1].json()["image"]
    assert Generation.objects.filter(engine="upscale", idempotency_key="extras-1").count() == 1
    cropped = api.extra_single_image(
        gradient(96, 64),
        resize_mode=1,
        upscaling_resize_w=150,
        upscaling_resize_h=150,
        upscaler_1="tiny-RealESRGAN_x4plus",
    )
    assert cropped.image.size == (150, 150)
    with pytest.raises(RuntimeError, match="one picture a request") as refused:
        api.extra_batch_images(
            [gradient(96, 64)], upscaling_resize=2, upscaler_1="tiny-RealESRGAN_x4plus"
        )
    assert refused.value.args[0] == 400


@pytest.fixture(scope="module")
def server_without_a_model(django_db_blocker):
    """The stack of a laptop with no diffusion model: the classical engine fills."""
    with django_db_blocker.unblock():
        env = child_env(LOAD_SD_INPAINT="false", INPAINT_ENGINE="classical")
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-a1111-classical.log") as url:
        yield url


def test_a_fill_engines_unused_strength_is_said_in_the_infotext(server_without_a_model, api_key):
    """openOutpaint's Img2Img tool asks for strength 0.7; the classical engine refills the
    whole mask. Its clients show the infotext, not ``warnings``: the infotext says so."""
    body = {
        "init_images": [base64.b64encode(png_bytes(gradient(96, 64))).decode()],
        "mask": base64.b64encode(png_bytes(white_box_mask())).decode(),
        "prompt": "a window",
        "denoising_strength": 0.7,
    }
    answer = requests.post(
        f"{server_without_a_model}/sdapi/v1/img2img", json=body, auth=("me", api_key), timeout=120
    )
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    assert info["extra_generation_params"]["Engine"] == "classical"
    assert (
        "denoising_strength was not used: the whole masked area is filled anew"
        in (info["infotexts"][0])
    )


def test_a1111_options_with_a_nul_character_are_a_400(api_key):
    """PostgreSQL keeps no NUL character in JSON: such an option is refused, not a 500
    (schemathesis found it)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    answer = client.post("/sdapi/v1/options", {"send\x00seed": True}, format="json")
    assert answer.status_code == 400 and "NUL character" in answer.json()["detail"]
    kept = client.post("/sdapi/v1/options", {"send_seed": False}, format="json")
    assert kept.status_code == 200
    assert client.get("/sdapi/v1/options").json()["send_seed"] is False


def test_a_users_kept_a1111_options_are_bounded(api_key):
    """The options a user may keep take at most 64 KB (their budget): more is a 400, and what
    was kept stays."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert client.post("/sdapi/v1/options", {"send_seed": False}, format="json").status_code == 200
    too_much = client.post("/sdapi/v1/options", {"notes": "x" * 70_000}, format="json")
    assert too_much.status_code == 400 and "at most 64 KB" in too_much.json()["detail"]
    kept = client.get("/sdapi/v1/options").json()
    assert kept["send_seed"] is False and "notes" not in kept


def test_a_sequence_marked_while_its_first_job_runs_is_kept_when_it_finishes(api, paused_worker):
    """``generation_repeat`` marks the first job of a sequence after it was queued: a worker
    may already run it. Its success keeps the mark (an idempotent replay reads it), with the
    engine's own metadata added."""
    answer = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    first = Generation.objects.get(pk=answer.json()["id"])
    claimed = runs.generation_claim(generation_id=str(first.pk))  # the worker took it
    generations.generation_repeat(generation=claimed, count=1, seed_step=1)
    ran = InpaintResult(
        images=[Image.new("RGB", (64, 64))], seeds=[5], engine="classical", model="",
        width=64, height=64, inference_seconds=0.1, metadata={"ran": True},
    )  # fmt: skip
    assert runs.generation_succeed(generation=claimed, result=ran)
    stored = Generation.objects.get(pk=first.pk).metadata
    assert stored["sequence"] == {"id": str(first.pk), "length": 2, "index": 0}
    assert stored["ran"] is True


def test_a_request_of_iterations_needs_room_for_all_and_replays_as_one(
    keyed_api, settings, api_key
):
    """``n_iter`` jobs are checked against the active-job quota together, before the picture
    is read (none stored when they do not all fit); an idempotent replay of the request gets
    its jobs back, none made again."""
    body = {
        "init_images": [base64.b64encode(png_bytes(gradient(96, 64))).decode()],
        "mask": base64.b64encode(png_bytes(white_box_mask())).decode(),
        **{"prompt": "", "steps": 2, "width": 96, "height": 64, "n_iter": 3, "seed": 5},
    }
    settings.MAX_ACTIVE_GENERATIONS_PER_USER = 2
    refused = keyed_api.post("/sdapi/v1/img2img", body, format="json")
    assert refused.status_code == 429 and "this request makes 3" in refused.json()["detail"]
    assert Generation.objects.count() == 0
    settings.MAX_ACTIVE_GENERATIONS_PER_USER = 10
    once = keyed_api.post("/sdapi/v1/img2img", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert once.status_code == 200, once.content
    info = json.loads(once.json()["info"])
    assert info["all_seeds"] == [5, 6, 7] and len(once.json()["images"]) == 3
    again = keyed_api.post("/sdapi/v1/img2img", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert json.loads(again.json()["info"])["all_seeds"] == [5, 6, 7]
    assert Generation.objects.count() == 3
