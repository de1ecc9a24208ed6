"""OpenAI's image edit API driven by the ``openai`` SDK, unchanged but for its base URL and
key, against a live server and a real worker (the tiny random inpainting model): plain, with
``n=2``, with ``response_format="url"``, streamed with partial images; errors in OpenAI's
shape."""

import base64
import io
from pathlib import Path

import numpy as np
import openai
import pytest
import requests
from django.conf import settings
from PIL import Image, ImageDraw

from accounts.services import api_key_revoke
from inpainting.answers import native
from inpainting.models import Generation
from tests.conftest import COMPAT_SERVER_LOG
from tests.images import gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
BOX = (30, 18, 62, 44)


@pytest.fixture
def server(compat_server):
    """The session's daphne for the compatible APIs (``tests/conftest.py``)."""
    return compat_server


def sdk(server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server}/v1", max_retries=0)


def files(tmp_path):
    """The image, and a mask whose transparent pixels (the box) are edited."""
    image_path, mask_path = tmp_path / "photo.png", tmp_path / "mask.png"
    gradient(96, 64).save(image_path)
    mask = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle(BOX, fill=(0, 0, 0, 0))
    mask.save(mask_path)
    return image_path, mask_path


def keep() -> np.ndarray:
    """Where the mask is opaque (kept; no feather: the blur of 4 px is outward)."""
    inside = np.zeros((64, 96), bool)
    x0, y0, x1, y1 = BOX
    inside[max(0, y0 - 4) : y1 + 5, max(0, x0 - 4) : x1 + 5] = True
    return ~inside


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_mask_of_another_size_is_refused_even_with_a_size(server, api_key, tmp_path):
    image_path, _ = files(tmp_path)
    small = tmp_path / "small.png"
    Image.new("RGBA", (48, 48), (0, 0, 0, 0)).save(small)
    with pytest.raises(openai.BadRequestError) as mismatch:
        with image_path.open("rb") as image, small.open("rb") as mask:
            sdk(server, api_key).images.edit(image=image, mask=mask, prompt="x", size="64x64")
    assert "size mismatch: the image is 96x64, the mask 48x48" in mismatch.value.body["message"]


def test_images_edit_keeps_every_opaque_pixel(server, api_key, tmp_path):
    image_path, mask_path = files(tmp_path)
    with image_path.open("rb") as image, mask_path.open("rb") as mask:
        result = sdk(server, api_key).images.edit(image=image, mask=mask, prompt="a red ball")
    assert len(result.data) == 1 and result.size == "96x64" and result.output_format == "png"
    assert result.usage is None  # no tokens are counted here
    out, original = decode(base64.b64decode(result.data[0].b64_json)), np.asarray(gradient(96, 64))
    assert np.array_equal(out[keep()], original[keep()])
    x0, y0, x1, y1 = BOX
    assert (out[y0:y1, x0:x1] != original[y0:y1, x0:x1]).any(axis=-1).mean() > 0.5
    generation = Generation.objects.get(client="openai")
    assert generation.engine == "diffusers" and generation.prompt == "a red ball"


def test_n_2_and_output_format(server, api_key, tmp_path):
    image_path, mask_path = files(tmp_path)
    with image_path.open("rb") as image, mask_path.open("rb") as mask:
        result = sdk(server, api_key).images.edit(
            image=[image], mask=mask, prompt="a cat", n=2, output_format="jpeg",
            output_compression=90, model="gpt-image-1.5",
        )  # fmt: skip
    assert len(result.data) == 2 and result.output_format == "jpeg"
    first, second = (base64.b64decode(item.b64_json) for item in result.data)
    assert Image.open(io.BytesIO(first)).format == "JPEG"
    assert first != second  # two seeds
    generation = Generation.objects.get(client="openai")
    assert generation.params["samples"] == 2 and generation.model_name  # the default model


def test_response_format_url_is_a_link_that_works_without_a_key(server, api_key, tmp_path):
    image_path, mask_path = files(tmp_path)
    with image_path.open("rb") as image, mask_path.open("rb") as mask:
        result = sdk(server, api_key).images.edit(
            image=image, mask=mask, prompt="a hat", response_format="url", size="64x64"
        )
    url = result.data[0].url
    fetched = requests.get(url, timeout=30)  # no key, as OpenAI's links are fetched
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (64, 64)
    tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
    refused = requests.get(tampered, timeout=30)
    assert refused.status_code == 404 and refused.json()["error"]["type"] == "invalid_request_error"
    generation = Generation.objects.get(client="openai")
    generation.owner.is_active = False  # a disabled account's links stop working
    generation.owner.save()
    assert requests.get(url, timeout=30).status_code == 404
    generation.owner.is_active = True
    generation.owner.save()
    assert requests.get(url, timeout=30).status_code == 200
    # The same image's output link as ModelsLab, FooocusAPI and deep-image.ai answer it, and a
    # tampered one (a 404, which Django's request log writes too).
    output_link = native.image_links(generation, server)[0]
    assert "/api/links/" in output_link
    assert requests.get(output_link, timeout=30).status_code == 200
    assert requests.get(output_link[:-3] + "AAA", timeout=30).status_code == 404
    # The access log never writes a link (it is the permission for an hour).
    log = (Path(settings.DATA_DIR) / COMPAT_SERVER_LOG).read_text()
    assert "/v1/images/files/[redacted]" in log and url.rsplit("/", 1)[1] not in log
    assert "/api/links/[redacted]" in log
    assert output_link.rsplit("/", 1)[1][:-3] not in log
    # Revoking the key that made the link ends it.
    api_key_revoke(api_key=generation.api_key)
    revoked = requests.get(url, timeout=30)
    assert revoked.status_code == 404 and "revoked" in revoked.json()["error"]["message"]
    generation.delete()  # and a deleted job's
    assert requests.get(url, timeout=30).status_code == 404


def test_streamed_with_partial_images(server, api_key, tmp_path):
    """Partial images from the worker's live previews (every 5 of the 30 steps), then the
    completed image; the SDK's own event types parse them."""
    image_path, mask_path = files(tmp_path)
    with image_path.open("rb") as image, mask_path.open("rb") as mask:
        stream = sdk(server, api_key).images.edit(
            image=image, mask=mask, prompt="a rose", stream=True, partial_images=2
        )
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds == ["image_edit.partial_image"] * 2 + ["image_edit.completed"]
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    for event in events:
        assert event.size == "96x64" and event.output_format == "png"
        assert decode(base64.b64decode(event.b64_json)).shape == (64, 96, 3)
    assert events[-1].usage.total_tokens == 0  # nothing is counted in tokens here
    final = decode(base64.b64decode(events[-1].b64_json))
    original = np.asarray(gradient(96, 64))
    assert np.array_equal(final[keep()], original[keep()])


def test_errors_in_openais_shape(server, api_key, tmp_path):
    image_path, _ = files(tmp_path)
    with pytest.raises(openai.AuthenticationError) as wrong:
        with image_path.open("rb") as image:
            sdk(server, "dl_wrong.key").images.edit(image=image, prompt="x")
    error = wrong.value.body
    assert error["code"] == "invalid_api_key" and error["message"] == "Invalid API key."
    opaque = tmp_path / "opaque.png"
    Image.new("RGB", (96, 64), "white").save(opaque)
    with pytest.raises(openai.BadRequestError) as no_alpha:
        with image_path.open("rb") as image, opaque.open("rb") as mask:
            sdk(server, api_key).images.edit(image=image, mask=mask, prompt="x")
    assert no_alpha.value.body == {
        "message": "Invalid mask image format - mask image missing alpha channel",
        "type": "invalid_request_error",
        "param": "mask",
        "code": "invalid_value",
    }
    with pytest.raises(openai.BadRequestError) as too_many:
        with image_path.open("rb") as image:
            sdk(server, api_key).images.edit(image=image, prompt="x", n=5)
    assert too_many.value.body["param"] == "n"
    assert too_many.value.response.headers["x-should-retry"] == "false"
    for size in ("١٠٢٤x١٠٢٤", "64X64", "64x64x3"):  # ASCII digits, the whole value
        with pytest.raises(openai.BadRequestError) as bad_size:
            with image_path.open("rb") as image:
                sdk(server, api_key).images.edit(image=image, prompt="x", size=size)
        assert bad_size.value.body["param"] == "size", size
    with pytest.raises(openai.BadRequestError) as no_mask:  # an opaque image and no mask
        with image_path.open("rb") as image:
            sdk(server, api_key).images.edit(image=image, prompt="x")
    assert no_mask.value.body["param"] == "mask"
    assert Generation.objects.count() == 0


def test_without_a_mask_the_images_transparent_pixels_are_edited(server, api_key, tmp_path):
    picture = gradient(96, 64).convert("RGBA")
    ImageDraw.Draw(picture).rectangle(BOX, fill=(0, 0, 0, 0))
    (tmp_path / "cutout.png").write_bytes(png_bytes(picture))
    with (tmp_path / "cutout.png").open("rb") as image:
        result = sdk(server, api_key).images.edit(image=image, prompt="a window")
    out = decode(base64.b64decode(result.data[0].b64_json))
    original = np.asarray(picture.convert("RGB"))
    assert np.array_equal(out[keep()], original[keep()])


def test_an_opaque_rgba_picture_without_a_mask_is_an_opaque_picture(server, api_key, tmp_path):
    """Open WebUI sends an RGBA PNG that is opaque everywhere: no pixel is transparent, so it
    is no mask (the whole picture is to be edited, an edit model's job), not a mask that
    selects nothing."""
    answers = {}
    for mode in ("RGB", "RGBA"):
        path = tmp_path / f"{mode}.png"
        gradient(96, 64).convert(mode).save(path)
        with pytest.raises(openai.BadRequestError) as refused, path.open("rb") as image:
            sdk(server, api_key).images.edit(image=image, prompt="make it winter")
        answers[mode] = refused.value.body
    assert answers["RGBA"] == answers["RGB"]
    assert answers["RGBA"]["param"] == "mask" and "polarity" not in answers["RGBA"]["message"]
    assert Generation.objects.count() == 0


def test_open_webuis_edit_without_a_mask_edits_the_whole_picture(
    server, api_key, tmp_path, edit_library
):
    """Open WebUI's image edit: multipart with model, prompt, n, size, response_format and the
    file ``image`` only, no mask, on an opaque photo. With an edit model, the whole picture is
    edited at its size (OpenAI's own rule); through the SDK and raw."""
    photo = tmp_path / "photo.png"
    gradient(96, 64).save(photo)
    original = np.asarray(Image.open(photo).convert("RGB"))
    with photo.open("rb") as image:
        result = sdk(server, api_key).images.edit(
            image=image, prompt="make it winter", model="kontext", response_format="b64_json"
        )
    out = decode(base64.b64decode(result.data[0].b64_json))
    assert out.shape == original.shape and (out != original).any(axis=2).mean() > 0.9
    raw = requests.post(
        f"{server}/v1/images/edits",
        headers={"Authorization": f"Bearer {api_key}"},
        data={
            "model": "kontext",
            "prompt": "make it winter",
            "n": "1",
            "size": "auto",
            "response_format": "b64_json",
        },
        files={"image": ("photo.png", photo.read_bytes(), "image/png")},
        timeout=120,
    )
    assert raw.status_code == 200, raw.text
    assert decode(base64.b64decode(raw.json()["data"][0]["b64_json"])).shape == original.shape
    # A model that does not edit: a 400 that names the one that does.
    with pytest.raises(openai.BadRequestError) as refused, photo.open("rb") as image:
        sdk(server, api_key).images.edit(image=image, prompt="x", model="alpha")
    assert refused.value.body["param"] == "mask"
    assert "the edit models here: kontext" in refused.value.body["message"]


def test_the_images_after_the_first_are_reference_pictures(server, api_key, tmp_path, edit_library):
    """``image[]`` with two files: the first is edited, the second is a reference picture,
    and Kontext reads none: a 400 on ``reference_images`` (a model that reads them gets both;
    tests/test_edits.py follows them to the worker)."""
    photo = png_bytes(gradient(96, 64))
    raw = requests.post(
        f"{server}/v1/images/edits",
        headers={"Authorization": f"Bearer {api_key}"},
        data={"model": "kontext", "prompt": "put the chair of picture 2 in picture 1"},
        files=[("image[]", (f"{n}.png", photo, "image/png")) for n in ("a", "b")],
        timeout=120,
    )
    assert raw.status_code == 400, raw.text
    error = raw.json()["error"]
    assert error["param"] == "reference_images"
    assert (
        "reads at most 0 reference pictures beside the one it edits; this request sent 1"
        in (error["message"])
    )


def test_open_webuis_two_pictures_edit_the_first_with_the_second_as_a_reference(
    server, api_key, tmp_path, qwen_library
):
    """Open WebUI's edit with ``image[]`` of two files, no mask, to Qwen-Image-Edit Plus: the
    first is edited at its size, the second reaches the worker as a reference picture."""
    first, second = png_bytes(gradient(96, 64)), png_bytes(Image.new("RGB", (40, 30), "red"))
    raw = requests.post(
        f"{server}/v1/images/edits",
        headers={"Authorization": f"Bearer {api_key}"},
        data={
            "model": "qwen-edit-2509",
            "prompt": "put the red thing of picture 2 in picture 1",
            "n": "1",
            "size": "auto",
            "response_format": "b64_json",
        },
        files=[
            ("image[]", ("a.png", first, "image/png")),
            ("image[]", ("b.png", second, "image/png")),
        ],
        timeout=300,
    )
    assert raw.status_code == 200, raw.text
    out = decode(base64.b64decode(raw.json()["data"][0]["b64_json"]))
    assert out.shape == (64, 96, 3)
    job = Generation.objects.get(model_name="qwen-edit-2509")
    assert job.metadata["reference_images"] == 1
    assert job.metadata["edit"] == "whole"
    assert [link.image.width for link in job.reference_links.all()] == [40]
