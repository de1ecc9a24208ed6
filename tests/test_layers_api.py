"""Layered jobs through the native API (issue 80): each layer a mask (a file of
``layer_masks`` or a data URL) with its own prompt; stored, run, answered, re-run, deleted."""

import base64
import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inpainting import gate
from inpainting.engine.layers import MAX_LAYERS
from inpainting.models import Generation, Mask, stored_bytes
from inpainting.services import projects, runs
from tests.helpers import H, W, image_png
from tests.images import box_mask, png_bytes

pytestmark = pytest.mark.django_db

LEFT = (8, 8, 40, 56)  # a layer's box (x0, y0, x1, y1), black: DreamLayer's polarity
RIGHT = (48, 8, 88, 40)


def layer_png(box) -> bytes:
    return png_bytes(box_mask(W, H, box, inpaint_white=False))


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def post_layers(api, layers, files=(), **fields):
    data = {
        "image": SimpleUploadedFile("photo.png", image_png(), "image/png"),
        "layers": json.dumps(layers),
        "wait": "false",
        **fields,
    }
    if files:
        data["layer_masks"] = [SimpleUploadedFile(f"l{i}.png", f) for i, f in enumerate(files)]
    return api.post("/api/img2img", data, format="multipart")


def two_layers(api, **fields):
    layers = [
        {"name": "scarf", "prompt": "a red scarf"},
        {"name": "window", "prompt": "a window", "mask": data_url(layer_png(RIGHT))},
    ]
    return post_layers(api, layers, [layer_png(LEFT)], prompt="a street", **fields)


def decoded(response) -> Image.Image:
    assert response.status_code == 200, response
    return Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB")


def covered(box) -> np.ndarray:
    x0, y0, x1, y1 = box
    inside = np.zeros((H, W), bool)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    return inside


def test_a_two_layer_job_is_stored_run_in_turn_and_answered_with_its_layers(api):
    response = two_layers(api, mask_blur=0)
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    assert generation.params["layers"] == [
        {"name": "scarf", "prompt": "a red scarf"},
        {"name": "window", "prompt": "a window"},
    ]
    # The job's mask is the layers' union, in the request's polarity (black: regenerated).
    with generation.mask.file.open("rb") as handle:
        union = np.asarray(Image.open(handle).convert("L")) < 128
    assert np.array_equal(union, covered(LEFT) | covered(RIGHT))
    assert generation.layer_links.count() == 2

    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    meta = detail["metadata"]
    assert meta["layers"] == generation.params["layers"]
    assert meta["layered"] == {"ran": "in turn", "regions": ["scarf", "window"]}
    assert len(detail["layer_masks"]) == 2
    mask = api.get(detail["layer_masks"][1].removeprefix("http://testserver"))
    sent = np.asarray(Image.open(io.BytesIO(layer_png(RIGHT))).convert("RGB"))
    assert np.array_equal(np.asarray(decoded(mask)), sent)  # as sent
    out = np.asarray(decoded(api.get(f"/api/generations/{generation.pk}/images/0.png")))
    before = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    outside = ~(covered(LEFT) | covered(RIGHT))
    assert np.array_equal(out[outside], before[outside])  # byte for byte
    assert np.any(out[covered(LEFT)] != before[covered(LEFT)])


def test_what_a_layered_request_may_not_send_is_a_400_naming_the_field(api):
    one = {"name": "a", "prompt": "x"}
    cases = [
        (post_layers(api, [one, one], [layer_png(LEFT)]), "layer_masks"),
        (post_layers(api, [one] * (MAX_LAYERS + 1)), "layers"),
        (post_layers(api, [{**one, "mask": "https://example.com/m.png"}]), "layers"),
        (post_layers(api, "not a list"), "layers"),
        (post_layers(api, [one], [layer_png(LEFT)], outpaint='{"right": 8}'), "layers"),
        (post_layers(api, [one], [layer_png(LEFT)], samples=2), "samples"),
        (post_layers(api, [{**one, "prompt": "<lora:ink:1> x"}], [layer_png(LEFT)]), "layers"),
        (post_layers(api, [one], [png_bytes(Image.new("L", (W, H), 255))]), "layers"),
    ]
    for response, field in cases:
        assert response.status_code == 400, response.content
        assert field in response.json()["errors"], response.json()
    assert not Generation.objects.exists() and not Mask.objects.exists()  # nothing stored


def test_a_tiny_layer_is_named_in_the_warnings_and_a_rerun_and_delete_keep_the_files_right(api):
    crumb = (0, 0, 2, 2)  # 9 of 6,144 pixels
    layers = [{"name": "scarf", "prompt": "x"}, {"name": "crumb", "prompt": "y"}]
    response = post_layers(api, layers, [layer_png(LEFT), layer_png(crumb)])
    assert response.status_code == 202, response.content
    first = Generation.objects.get(pk=response.json()["id"])
    said = [w for w in first.metadata["warnings"] if w["field"] == "layers"]
    assert len(said) == 1 and "Layer 'crumb' covers 0.1%" in said[0]["message"]
    runs.generation_run(generation_id=str(first.pk))
    rerun = api.post(f"/api/generations/{first.pk}/rerun/")
    assert rerun.status_code in (200, 201, 202), rerun.content
    again = Generation.objects.exclude(pk=first.pk).get()
    assert list(again.layer_links.values_list("mask_id", flat=True)) == list(
        first.layer_links.values_list("mask_id", flat=True)
    )  # the same files
    assert again.mask_id == first.mask_id and again.params["layers"] == layers
    masks = Mask.objects.count()
    assert api.delete(f"/api/generations/{first.pk}/").status_code == 204
    assert Mask.objects.count() == masks  # the re-run still uses them
    assert api.delete(f"/api/generations/{again.pk}/").status_code == 204
    assert not Mask.objects.exists()


def test_every_layer_mask_is_counted_by_the_web_budget_and_the_owners_storage(api, user, gate_asks):
    """The gate is asked for the picture, each layer's mask and the union made of them, at
    the cost of a job's uploads (N layers cost what N + 2 pictures cost); each stored mask's
    bytes count in its owner's storage."""
    generation = Generation.objects.get(pk=two_layers(api).json()["id"])
    assert gate_asks == [(gate.JOB_UPLOADS, ((W, H),) * 4)]
    masks = [generation.mask, *(link.mask for link in generation.layer_links.all())]
    assert len(masks) == 3 and all(m.owner_id == user.pk and m.stored_bytes > 0 for m in masks)
    kept = generation.source.stored_bytes + sum(m.stored_bytes for m in masks)
    assert stored_bytes(user_id=user.pk) == kept


def test_the_history_page_and_the_admin_show_each_layer_with_its_prompt(
    api, user, staff_user, client
):
    generation = Generation.objects.get(pk=two_layers(api).json()["id"])
    client.force_login(user)
    page = client.get(f"/history/{generation.pk}/").content.decode()
    assert "Layer 1, scarf: a red scarf" in page and "Layer 2, window: a window" in page
    assert "scarf: a red scarf; window: a window" in page  # the parameters' table
    thumbnail = client.get(f"/api/generations/{generation.pk}/thumbnails/layer-1.webp")
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    assert client.get(f"/api/generations/{generation.pk}/layers/2.png").status_code == 404
    client.force_login(staff_user)
    admin = client.get(f"/admin/inpainting/generation/{generation.pk}/change/").content.decode()
    assert "a red scarf" in admin and "a window" in admin
    assert f"/api/generations/{generation.pk}/layers/1.png" in admin


def test_a_job_saved_as_a_project_and_sent_again_is_the_same_job(api):
    first = Generation.objects.get(pk=two_layers(api, seed=7).json()["id"])
    runs.generation_run(generation_id=str(first.pk))
    first.refresh_from_db()
    saved = api.get(f"/api/generations/{first.pk}/project/")
    assert saved.status_code == 200 and saved["Content-Type"] == "application/zip"
    assert 'filename="dreamlayer-a-street-project.zip"' in saved["Content-Disposition"]
    data = b"".join(saved.streaming_content)
    project = projects.project_read(data)
    assert [(x.name, x.prompt) for x in project.layers] == [
        ("scarf", "a red scarf"),
        ("window", "a window"),
    ]
    assert project.mask is None and len(project.results) == 1  # the union is not the job's own
    opened = api.post(
        "/api/projects/open", {"project": SimpleUploadedFile("p.zip", data)}, format="multipart"
    ).json()
    assert [x["name"] for x in opened["layers"]] == ["scarf", "window"]
    assert opened["image"].startswith("data:image/png;base64,") and opened["mask"] is None
    assert opened["params"]["seed"] == 7 and opened["prompt"] == "a street"

    again = api.post(
        "/api/img2img",
        {"project": SimpleUploadedFile("p.zip", data), "wait": "false"},
        format="multipart",
    )
    assert again.status_code == 202, again.content
    second = Generation.objects.get(pk=again.json()["id"])
    assert second.params == first.params and second.prompt == "a street"
    assert second.source.sha256 == first.source.sha256
    masks = [list(g.layer_links.values_list("mask__sha256", flat=True)) for g in (first, second)]
    assert masks[0] == masks[1] and second.metadata["mask_from_layers"] is True
    runs.generation_run(generation_id=str(second.pk))
    second.refresh_from_db()
    assert second.seed == first.seed == 7
    pixels = [
        np.asarray(decoded(api.get(f"/api/generations/{g.pk}/images/0.png")))
        for g in (first, second)
    ]
    assert np.array_equal(*pixels)
    # The request's own fields win over the project's parameters.
    other = api.post(
        "/api/img2img",
        {"project": SimpleUploadedFile("p.zip", data), "wait": "false", "prompt": "a lane"},
        format="multipart",
    )
    assert Generation.objects.get(pk=other.json()["id"]).prompt == "a lane"


def test_a_file_that_is_no_project_is_a_400_and_nothing_is_stored(api):
    for sent in (b"not a zip", projects.project_bytes(projects.Project(b"x", "", {}, []))):
        for url in ("/api/img2img", "/api/projects/open"):
            response = api.post(
                url, {"project": SimpleUploadedFile("p.zip", sent)}, format="multipart"
            )
            assert response.status_code == 400, response.content
            assert "project" in response.json()["errors"], response.json()
    assert not Generation.objects.exists()
