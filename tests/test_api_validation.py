"""POST /api/img2img refuses bad input with a 4xx and a clear message, storing nothing."""

import io

import pytest
from PIL import Image

from inpainting.models import Generation, Mask, SourceImage
from tests.helpers import black_box_mask_png, image_png, post_img2img
from tests.images import declared_png, gradient, jpeg_bytes, png_bytes

pytestmark = pytest.mark.django_db


def assert_error(response, status, field, words):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error"
    assert words in body["message"]
    if field:
        assert field in body["errors"], body
        assert any(words in message for message in body["errors"][field])
    assert Generation.objects.count() == 0
    assert SourceImage.objects.count() == 0 and Mask.objects.count() == 0


def test_jpeg_mask_is_refused(api):
    mask = jpeg_bytes(Image.open(io.BytesIO(black_box_mask_png())))
    response = post_img2img(api, image_png(), mask)  # named mask.png, sent as image/png
    assert_error(response, 400, "mask", "must be PNG; this file is JPEG")


def test_file_over_ten_megabytes_is_refused(api):
    big = png_bytes(gradient(96, 64)) + b"\x00" * (10 * 1024 * 1024)
    response = post_img2img(api, big, black_box_mask_png())
    assert_error(response, 400, "image", "larger than 10 MB")


def test_decompression_bomb_is_refused(api):
    response = post_img2img(api, declared_png(50_000, 50_000), black_box_mask_png())
    assert_error(response, 400, "image", "the limit is")


def test_not_an_image(api):
    response = post_img2img(api, b"<html><script>alert(1)</script></html>", black_box_mask_png())
    assert_error(response, 400, "image", "is not a JPEG, PNG, WEBP, HEIF or AVIF image")


def test_empty_file(api):
    response = post_img2img(api, b"", black_box_mask_png())
    assert response.status_code == 400
    assert response.json()["errors"]["image"]


def test_truncated_png(api):
    response = post_img2img(api, image_png()[:200], black_box_mask_png())
    assert_error(response, 400, "image", "could not be decoded")


def test_missing_mask(api):
    response = post_img2img(api, image_png(), None)
    assert_error(response, 400, "mask", "A mask file is required unless outpaint is given")


def test_aspect_mismatch(api):
    response = post_img2img(api, image_png(96, 64), black_box_mask_png(64, 64, (10, 10, 20, 20)))
    assert_error(response, 400, "mask", "aspect ratios differ")


def test_mask_that_selects_nothing(api):
    all_white = png_bytes(Image.new("L", (96, 64), 255))
    assert_error(post_img2img(api, image_png(), all_white), 400, "mask", "selects no pixels")


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("num_inference_steps", "0", "greater than or equal to 1"),
        ("steps", "151", "less than or equal to 150"),
        ("guidance_scale", "101", "less than or equal to 100"),  # no family goes higher
        ("denoising_strength", "1.5", "less than or equal to 1"),
        ("samples", "5", "less than or equal to 4"),
        ("seed", str(2**32), "less than or equal to 4294967295"),
        ("mask_blur", "65", "less than or equal to 64"),
        ("mask_grow", "-65", "greater than or equal to -64"),
        ("mask_mode", "red_inpaints", "not a valid choice"),
        ("prompt", "x" * 2001, "no more than 2000 characters"),
        ("num_inference_steps", "many", "A valid integer is required"),
    ],
)
def test_out_of_range_parameters(api, field, value, words):
    response = post_img2img(api, image_png(), black_box_mask_png(), **{field: value})
    canonical = {"steps": "num_inference_steps"}.get(field, field)
    assert_error(response, 400, canonical, words)


def test_a_value_outside_the_models_range_is_refused_naming_the_model(api, tiny_model):
    """Guidance 25 is within the widest family range (FLUX.1 Fill's, to 100) but not within
    Stable Diffusion's (1-20): the diffusers job is refused, and the message names the model."""
    response = post_img2img(
        api, image_png(), black_box_mask_png(), engine="diffusers", prompt="a rose",
        guidance_scale="25",
    )  # fmt: skip
    assert_error(
        response,
        400,
        "guidance_scale",
        f"between 1 and 20 for the model '{tiny_model.name}' (Stable",
    )  # its name, never the server's path to it
    assert "(Stable Diffusion 1.5)" in response.json()["message"]


def test_params_must_be_a_json_object(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), params="[1, 2]")
    assert_error(response, 400, "params", "JSON object")


def test_diffusers_needs_a_prompt(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="diffusers")
    assert_error(response, 400, "prompt", "prompt is required")


def test_engine_not_loaded(api, settings):
    settings.LOAD_SD_INPAINT = False
    response = post_img2img(
        api, image_png(), black_box_mask_png(), engine="diffusers", prompt="a rose"
    )
    assert_error(response, 400, "engine", "not loaded")


def test_json_body_is_unsupported_media_type(api):
    response = api.post("/api/img2img", {"prompt": "x"}, format="json")
    assert response.status_code == 415
    assert response.json()["status"] == "error"


def test_quota_of_active_generations(api, settings):
    settings.MAX_ACTIVE_GENERATIONS_PER_USER = 1
    first = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert first.status_code == 202
    second = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert second.status_code == 429
    assert "limit is 1" in second.json()["message"]
    assert Generation.objects.count() == 1


def test_unknown_api_url_is_a_json_404(api):
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["status"] == "error"


def test_stored_files_are_re_encoded_without_metadata_or_trailing_bytes(api):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret camera serial 1234")
    buffer = io.BytesIO()
    gradient(96, 64).save(buffer, format="PNG", pnginfo=info)
    polyglot = buffer.getvalue() + b"<html><script>alert(1)</script></html>"
    response = post_img2img(api, polyglot, black_box_mask_png(), wait="false")
    assert response.status_code == 202
    generation = Generation.objects.get(pk=response.json()["id"])
    stored = generation.source.file.open("rb").read()
    assert b"secret camera" not in stored and b"<html>" not in stored
    assert stored.endswith(b"IEND\xaeB`\x82")
    assert generation.source.file.name.startswith("sources/")
    assert "photo" not in generation.source.file.name  # the client's name is never used


def test_mask_thumbnail_is_128_px(api):
    response = post_img2img(api, image_png(300, 200), black_box_mask_png(300, 200), wait="false")
    assert response.status_code == 202
    mask = Generation.objects.get().mask
    assert Image.open(mask.thumbnail.open("rb")).size == (128, 85)
    assert (mask.width, mask.height) == (300, 200) and len(mask.sha256) == 64


def test_sixteen_bit_mask_keeps_its_meaning(api):
    import numpy as np

    mask16 = Image.fromarray(
        np.asarray(Image.open(io.BytesIO(black_box_mask_png())), np.uint16) * 257
    )
    response = post_img2img(api, image_png(), png_bytes(mask16), wait="false")
    assert response.status_code == 202, response.content
    stored = Image.open(Generation.objects.get().mask.file.open("rb"))
    assert stored.mode.startswith("I")
    assert np.asarray(stored).max() == 65535


@pytest.mark.parametrize(
    "outpaint,words",
    [
        ('{"left": -5}', "left: Ensure this value is greater than or equal to 0"),
        ('{"left": 10, "width": 300}', "either pixels per side or a target size"),
        ("{}", "adds no pixels"),
        ("[1]", "must be a JSON object"),
        (" ", "must be a JSON object"),  # a blank field is no JSON, not no outpaint
        ('{"width": 50, "height": 50}', "smaller than the image"),
        ('{"right": 8000}', "less than or equal to 2048"),
    ],
)
def test_bad_outpaint(api, outpaint, words):
    response = post_img2img(api, image_png(), None, outpaint=outpaint)
    assert_error(response, 400, "outpaint", words)


def test_bad_inpaint_area_and_padding(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), inpaint_area="corner")
    assert_error(response, 400, "inpaint_area", "not a valid choice")
    response = post_img2img(api, image_png(), black_box_mask_png(), padding=300)
    assert_error(response, 400, "padding", "less than or equal to 256")


def test_a_malformed_lora_item_is_a_400_naming_it(api):
    """A list's errors come as a dict by index when an item is not an object: every shape
    gives a clear message (the lookup once raised StopIteration)."""
    for loras, message in (
        ("[null]", "loras[0]: This field may not be null."),
        ('[{"name": "ink", "weight": "x"}]', "loras[0].weight: A valid number is required."),
        ('[1, {"name": "ink"}]', "loras[0]: Invalid data. Expected a dictionary, but got int."),
    ):
        response = post_img2img(api, image_png(), black_box_mask_png(), prompt="x", loras=loras)
        assert response.status_code == 400, response.content
        assert response.json()["errors"]["loras"] == [message]


def test_a_json_body_nested_too_deep_is_a_400(api):
    deep = '{"init_image": ' + "[" * 50000 + "]" * 50000 + "}"  # under the elements' bound
    response = api.post("/api/v6/images/inpaint", deep, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["message"]
