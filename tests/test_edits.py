"""Edit by words (issue 36) through the library, the native API and a real worker: the tiny
FLUX.1 Kontext and Qwen-Image-Edit Plus folders are scanned as edit families and listed with
``edits: true``; a request without a mask edits the whole picture at its size; a request with
a mask keeps every pixel outside the effective mask; Qwen-Image-Edit Plus gets the reference
pictures; a model that does not edit answers a mask-less request with a 400 that names the
models that do."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation, GenerationReference, LibraryModel, SourceImage
from inpainting.services.files import open_stored
from tests.conftest import library_of
from tests.helpers import (
    H,
    W,
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_for_status,
)
from tests.images import png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_the_scan_lists_the_edit_model_and_what_it_accepts(api, edit_library):
    assert (edit_library.family, edit_library.layout) == ("flux-kontext", "diffusers")
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["kontext"]["family_label"] == "FLUX.1 Kontext"
    assert listed["kontext"]["accepts"]["edits"] is True
    assert listed["kontext"]["accepts"]["reference_images"] == 0
    assert listed["alpha"]["accepts"]["edits"] is False


def test_an_edit_without_a_mask_changes_the_whole_picture_at_its_size(api, edit_library):
    generation = run_job(api, mask=None, model="kontext", prompt="make it look like winter")
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    out = output_pixels(generation)
    assert out.shape == original.shape  # 96 x 64, worked at 64 x 48 and brought back
    assert (out != original).any(axis=2).mean() > 0.9
    assert generation.mask is None
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["metadata"]["edit"] == "whole"
    assert detail["metadata"]["family"] == "flux-kontext"
    # The history's picture of the regenerated area: all of it.
    regenerated = api.get(f"/api/generations/{generation.pk}/regenerated.png")
    assert regenerated.status_code == 200
    body = b"".join(regenerated.streaming_content)  # a stored file (made once, issue 52)
    tinted = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert tinted.shape[:2] == original.shape[:2]
    assert (tinted != original).any(axis=2).mean() > 0.99


def test_a_masked_edit_keeps_every_pixel_outside_the_mask(api, edit_library):
    generation = run_job(api, model="kontext", prompt="a red door")
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    out = output_pixels(generation)
    assert np.array_equal(out[~inside], original[~inside])
    assert (out[inside] != original[inside]).any(axis=1).mean() > 0.5
    assert generation.metadata["edit"] == "masked"


def test_a_model_that_does_not_edit_needs_a_mask_and_says_which_models_edit(api, edit_library):
    fields = {"prompt": "make it winter", "engine": "diffusers", "model": "alpha"}
    response = post_img2img(api, image_png(), None, **fields)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"]["mask"][0].startswith("A mask file is required")
    assert "the edit models here: kontext" in body["message"]
    LibraryModel.objects.filter(name="kontext").update(enabled=False)
    response = post_img2img(api, image_png(), None, **fields)
    assert (
        "none is installed: copy a Bria FIBO 2.0, FLUX.1 Kontext, FLUX.2 [klein], FLUX.2 [klein] "
        "base, FLUX.3 [klein], FLUX.3 [klein] base, Qwen-Image-2.1, Qwen-Image-Edit or "
        "Qwen-Image-Edit Plus diffusers folder" in response.json()["message"]
    )


def test_the_cli_edits_without_a_mask(edit_library, tmp_path):
    image, out = tmp_path / "in.png", tmp_path / "out.png"
    image.write_bytes(image_png())
    call_command(
        "inpaint",
        *("--image", str(image), "--out", str(out), "--prompt", "make it winter"),
        *("--model", "kontext", "--seed", "5", "--steps", "4"),
        stdout=io.StringIO(),
    )
    picture = Image.open(out)
    assert picture.size == (96, 64)
    assert '"model": "kontext"' in picture.info["dreamlayer"]
    original = np.asarray(Image.open(image).convert("RGB"))
    assert (np.asarray(picture.convert("RGB")) != original).any(axis=2).mean() > 0.9


def references(count: int) -> list:
    return [SimpleUploadedFile(f"ref{i}.png", image_png(), "image/png") for i in range(count)]


def test_reference_pictures_are_refused_where_no_model_reads_them(api, edit_library):
    """Kontext reads no reference picture, the classical engine none either; more than three
    are refused before any is read. Nothing is stored for a refused request."""
    cases = [
        ({"model": "kontext", "reference_images": references(1)}, "reads at most 0 reference"),
        ({"engine": "classical", "reference_images": references(1)}, "reference_images applies"),
        ({"model": "kontext", "reference_images": references(4)}, "At most 3 reference"),
    ]
    for fields, message in cases:
        response = post_img2img(
            api, image_png(), black_box_mask_png(), prompt="put the chair here", **fields
        )
        assert response.status_code == 400, response.content
        body = response.json()
        assert "reference_images" in body["errors"], body
        assert message in body["message"], body
    assert not SourceImage.objects.exists() and not GenerationReference.objects.exists()


def test_the_cli_refuses_reference_pictures_the_model_does_not_read(edit_library, tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(image_png())
    with pytest.raises(CommandError, match=r"kontext \(FLUX.1 Kontext\) reads at most 0"):
        call_command(
            "inpaint",
            *("--image", str(image), "--out", str(tmp_path / "out.png")),
            *("--prompt", "put the chair here", "--model", "kontext"),
            *("--reference", str(image)),
            stdout=io.StringIO(),
        )
    assert not (tmp_path / "out.png").exists()


def test_reference_pictures_are_stored_in_order_reach_the_worker_and_go_with_the_last_job(
    api, qwen_library, staff_user
):
    """Qwen-Image-Edit Plus reads two reference pictures beside the one it edits: the request
    is accepted, its pictures are stored in order, the worker hands both to the pipeline, a
    re-run uses the same files, and they are deleted with the last job that uses them."""
    colours = [(200, 30, 30), (30, 200, 30)]
    files = [
        SimpleUploadedFile(f"{i}.png", png_bytes(Image.new("RGB", (40, 30), c)), "image/png")
        for i, c in enumerate(colours)
    ]
    response = post_img2img(
        api, image_png(), None, prompt="put the red thing in", model="qwen-edit-2509",
        reference_images=files, wait="false",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    first = wait_for_status(response.json()["id"], timeout=180)
    stored = [link.image for link in first.reference_links.order_by("position")]
    assert [open_stored(row.file).getpixel((0, 0)) for row in stored] == colours
    assert first.status == "succeeded", first.error
    assert first.metadata["reference_images"] == 2
    assert first.metadata["edit_pipeline"] == "QwenImageEditPlusPipeline"
    assert output_pixels(first).shape == (H, W, 3)

    rerun = api.post(f"/api/generations/{first.pk}/rerun/")
    assert rerun.status_code == 201, rerun.content
    second = Generation.objects.get(pk=rerun.json()["id"])
    assert [link.image for link in second.reference_links.order_by("position")] == stored
    assert wait_for_status(second.pk, timeout=180).status == "succeeded"
    admin = Client()
    admin.force_login(staff_user)
    page = admin.get(f"/admin/inpainting/generation/{first.pk}/change/").content.decode()
    assert "Reference pictures" in page and page.count("40 x 30") == 2
    assert api.delete(f"/api/generations/{first.pk}/").status_code == 204
    assert all(default_storage.exists(row.file.name) for row in stored)  # the re-run uses them
    assert api.delete(f"/api/generations/{second.pk}/").status_code == 204
    assert not SourceImage.objects.exists() and not GenerationReference.objects.exists()
    assert not any(default_storage.exists(row.file.name) for row in stored)


def test_fibo2_edits_inside_its_own_mask_and_the_whole_picture_through_the_worker(
    api, tmp_path, models_dir, tiny_model, fibo2_weights, monkeypatch, settings
):
    """Bria FIBO 2.0 (issue 85), scanned from its published layout and run by the worker: a
    masked edit (the pipeline's own mask) keeps every pixel outside the effective mask; a
    request without a mask edits the whole picture."""
    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "fibo2": fibo2_weights})
    row = LibraryModel.objects.get(name="fibo2")
    assert (row.family, row.inpainting, row.layout) == ("fibo2", True, "diffusers")
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["fibo2"]["family_label"] == "Bria FIBO 2.0"
    assert listed["fibo2"]["accepts"]["edits"] is True
    # The memory planner sizes it from its parts, as every model: fp8 storage for its
    # transformer among the plans.
    assert {"gpu", "fp8", "sequential"} <= set(listed["fibo2"]["memory_gb"])
    masked, _ = masked_and_whole(api, "fibo2")
    assert masked.metadata["family"] == "fibo2"
    # Copied in by hand, it is under its family's licence, refused where such models are not.
    assert listed["fibo2"]["licence"] == "cc-by-nc-4-0"
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    refused = post_img2img(api, image_png(), None, prompt="make it winter", model="fibo2")
    assert refused.status_code == 403 and "CC BY-NC 4.0" in refused.json()["message"]


def test_qwen_image21_edits_with_its_mask_as_a_picture_and_is_refused_by_its_licence(
    api, keyed_api, tmp_path, models_dir, tiny_model, qwen21_weights, monkeypatch, settings
):
    """Qwen-Image-2.1 (issue 85), copied into the library by hand in its published layout and
    run by the worker: a masked edit (the mask a picture the pipeline reads) keeps every pixel
    outside the effective mask; a request without a mask edits the whole picture, and with
    ``background: transparent`` (native, and OpenAI's) keeps the alpha its VAE paints, which
    a model without one says it did not use. Its family's licence is the library's record of
    it, and where non-commercial models are not allowed a job for it is refused with the
    licence's name."""
    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "qwen21": qwen21_weights})
    row = LibraryModel.objects.get(name="qwen21")
    assert (row.family, row.inpainting, row.licence) == ("qwen-image-21", True, "")
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["qwen21"]["licence"] == "qwen-research-license"
    assert {"gpu", "fp8", "sequential"} <= set(listed["qwen21"]["memory_gb"])
    masked, whole = masked_and_whole(api, "qwen21")
    assert masked.metadata["mask_as"] == "picture"
    assert "background" not in whole.metadata and stored_picture(whole).mode == "RGB"
    cut_out = run_job(
        api, mask=None, model="qwen21", prompt="cut it out", num_inference_steps=3,
        background="transparent",
    )  # fmt: skip
    picture = stored_picture(cut_out)
    assert cut_out.metadata["background"] == "transparent" and picture.mode == "RGBA"
    assert np.asarray(picture)[..., 3].min() < 255  # the tiny model's alpha: not all opaque
    answer = keyed_api.post(
        "/v1/images/edits",
        {"image": SimpleUploadedFile("p.png", image_png(), "image/png"), "prompt": "cut it out",
         "model": "qwen21", "background": "transparent", "output_format": "webp"},
        format="multipart",
    )  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["background"] == "transparent"
    webp = Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"])))
    assert (webp.format, webp.mode) == ("WEBP", "RGBA")
    assert np.asarray(webp)[..., 3].min() < 255
    jpeg = keyed_api.post(
        "/v1/images/edits",
        {"image": SimpleUploadedFile("p.png", image_png(), "image/png"), "prompt": "cut it out",
         "background": "transparent", "output_format": "jpeg"},
        format="multipart",
    )  # fmt: skip
    assert jpeg.status_code == 400 and jpeg.json()["error"]["param"] == "background"
    opaque = run_job(api, model="alpha", background="transparent", num_inference_steps=2)
    assert [w["field"] for w in opaque.metadata["warnings"]] == ["background"]
    assert stored_picture(opaque).mode == "RGB"
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    refused = post_img2img(api, image_png(), None, prompt="make it winter", model="qwen21")
    assert refused.status_code == 403
    assert "Qwen Research License" in refused.json()["message"]
    assert Generation.objects.count() == 5


def test_flux3_klein_edits_in_its_masks_box_and_is_refused_by_its_licence(
    api, tmp_path, models_dir, tiny_model, flux3_weights, monkeypatch, settings
):
    """FLUX.3 [klein] (issue 85), a modular pipeline copied into the library by hand in its
    published layout (``modular_model_index.json``) and run by the worker: a masked edit (the
    mask's box a layout box the words describe) keeps every pixel outside the effective mask;
    a request without a mask edits the whole picture. Its family's licence is the library's
    record of it, refused with its name where non-commercial models are not allowed."""
    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "flux3": flux3_weights})
    row = LibraryModel.objects.get(name="flux3")
    assert (row.family, row.inpainting, row.layout) == ("flux3-klein", True, "diffusers")
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["flux3"]["family_label"] == "FLUX.3 [klein]"
    assert listed["flux3"]["licence"] == "flux-kommunity-license"
    assert {"gpu", "fp8", "text-encoder-offload"} <= set(listed["flux3"]["memory_gb"])
    masked, _ = masked_and_whole(api, "flux3")
    assert masked.metadata["mask_as"] == "box"
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    refused = post_img2img(api, image_png(), None, prompt="make it winter", model="flux3")
    assert refused.status_code == 403
    assert "FLUX Kommunity License" in refused.json()["message"]


def masked_and_whole(api, model: str) -> tuple[Generation, Generation]:
    """A masked edit by ``model`` (every pixel outside the effective mask the input's, most
    inside changed) and one without a mask (the whole picture changed), through the worker."""
    masked = run_job(api, model=model, prompt="a red door", num_inference_steps=3)
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    out = output_pixels(masked)
    assert np.array_equal(out[~inside], original[~inside])
    assert (out[inside] != original[inside]).any(axis=1).mean() > 0.5
    assert masked.metadata["edit"] == "masked"
    whole = run_job(api, mask=None, model=model, prompt="make it winter", num_inference_steps=3)
    assert whole.metadata["edit"] == "whole"
    assert (output_pixels(whole) != original).any(axis=2).mean() > 0.9
    return masked, whole


def stored_picture(generation) -> Image.Image:
    """A job's first output as stored (its PNG, decoded)."""
    with generation.images.get(index=0).file.open("rb") as handle:
        picture = Image.open(handle)
        picture.load()
    return picture
