"""The history and detail pages as served: captions, times with their zone, the parameter
table's labels, the mask pictures' labels, and the favicon."""

import re
from datetime import UTC, datetime
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from inpainting.engine.parameters import PARAMETERS
from inpainting.models import Generation, Mask
from inpainting.services import files, runs
from tests.helpers import BOX, H, W, image_png, post_img2img
from tests.images import box_mask, png_bytes

pytestmark = pytest.mark.django_db

BLACK_BOX = png_bytes(box_mask(W, H, BOX, inpaint_white=False))
WHITE_BOX = png_bytes(box_mask(W, H, BOX, inpaint_white=True))


def submit(api, mask: bytes | None = BLACK_BOX, **fields) -> Generation:
    response = post_img2img(api, image_png(), mask, wait="false", **fields)
    assert response.status_code == 202, response.content
    return Generation.objects.get(pk=response.json()["id"])


@pytest.fixture
def browser_client(client, user):
    client.force_login(user)
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def captions(html: str) -> list[str]:
    return re.findall(r'<span class="caption">([^<]*)</span>', html)


def test_history_cards_say_what_each_job_is(api, browser_client):
    followed = submit(api, prompt="a wooden bench in the park")
    Generation.objects.filter(pk=followed.pk).update(engine="diffusers")  # a model's job
    submit(api, prompt="a red rose")  # the classical engine ignores the prompt: not a caption
    submit(api)  # a mask and no prompt
    submit(api, mask=None, outpaint='{"right": 16}')
    submit(api, outpaint='{"left": 8}')
    html = page(browser_client, "/history/")
    assert captions(html) == [  # newest first
        "Outpaint and object removal",
        "Outpaint",
        "Object removal",
        "Object removal",
        "a wooden bench in the park",
    ]
    assert "(no prompt)" not in html
    assert 'alt="Object removal"' in html  # the thumbnail says it too


def test_a_long_prompt_is_shortened_on_its_card(api, browser_client):
    generation = submit(api, prompt="a " + "very " * 30 + "long prompt")
    Generation.objects.filter(pk=generation.pk).update(engine="diffusers")
    (caption,) = captions(page(browser_client, "/history/"))
    assert len(caption) == 48 and caption.endswith("…")


def test_times_carry_their_zone_and_a_machine_readable_form(api, browser_client):
    generation = submit(api, prompt="timed")
    moment = datetime(2026, 11, 23, 14, 5, 9, tzinfo=UTC)
    Generation.objects.filter(pk=generation.pk).update(created_at=moment)
    expected = '<time datetime="2026-11-23T14:05:09+00:00">2026-11-23 14:05 UTC</time>'
    assert expected in page(browser_client, "/history/")
    assert expected in page(browser_client, f"/history/{generation.pk}/")


def header_cells(html: str) -> list[str]:
    table = html[html.index('<table class="params">') : html.index("</table>")]
    return re.findall(r"<th[^>]*>([^<]*)</th>", table)


def test_every_parameter_row_has_a_label_and_the_engine_shows_once(api, browser_client):
    generation = submit(api, prompt="labels", seed=5, mask_blur=6, outpaint='{"right": 16}')
    runs.generation_run(generation_id=str(generation.pk))
    html = page(browser_client, f"/history/{generation.pk}/")
    cells = header_cells(html)
    assert not [cell for cell in cells if re.search(r"[a-z]_[a-z]", cell)], cells
    assert all(cell[:1].isupper() for cell in cells), cells
    assert cells.count("Engine") == 1
    # The classical engine follows no words and does no sampling: none of that is shown.
    for label in ("Prompt", "Negative prompt", "Denoising strength", "Steps", "Guidance scale"):
        assert label not in cells
    assert not {"Scheduler", "Model", "Clip skip", "Soft inpainting"} & set(cells)
    assert {"Mask blur (px)", "Seed used", "Seed", "Outpaint"} <= set(cells)
    rows = {
        label: unescape(value)
        for label, value in re.findall(r'<th scope="row">([^<]*)</th><td[^>]*>([^<]*)</td>', html)
    }
    assert rows["Mask blur (px)"] == "6"
    assert rows["Outpaint"] == "right 16 px"
    assert rows["Invert mask"] == "no"
    assert rows["Engine"].startswith("classical (")
    assert rows["Client"] == "Browser"  # a session, not a key


def test_every_definition_has_a_label():
    for parameter in PARAMETERS.values():
        assert parameter.label and "_" not in parameter.label, parameter.name


def figure_captions(html: str) -> list[str]:
    return re.findall(r"<figcaption>([^<]*)</figcaption>", html)


@pytest.mark.parametrize(
    "mask,fields,words",
    [
        (BLACK_BOX, {}, "black = regenerate"),
        (WHITE_BOX, {"mask_mode": "white_inpaints"}, "white = regenerate"),
        (WHITE_BOX, {"invert_mask": "true"}, "white = regenerate"),
        (BLACK_BOX, {"mask_mode": "white_inpaints", "invert_mask": "true"}, "black = regenerate"),
    ],
)
def test_the_mask_is_labelled_with_its_polarity(api, browser_client, mask, fields, words):
    generation = submit(api, mask, **fields)
    html = page(browser_client, f"/history/{generation.pk}/")
    assert figure_captions(html) == ["Input", "Regenerated area (red)", f"Mask as sent ({words})"]
    # Its thumbnail, linked to the picture at full size.
    assert (
        f'<a href="/api/generations/{generation.pk}/regenerated.png">'
        f'<img src="/api/generations/{generation.pk}/thumbnails/regenerated.webp"'
    ) in html


def test_a_transparent_mask_is_labelled_by_its_transparency(api, browser_client):
    mask = Image.new("RGBA", (W, H), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), BOX)
    generation = submit(api, png_bytes(mask))
    html = page(browser_client, f"/history/{generation.pk}/")
    assert "Mask as sent (transparent = regenerate)" in html
    assert Mask.objects.get(pk=generation.mask_id).transparent is True  # read when stored


def test_a_mask_stored_before_its_transparency_was_recorded_is_read_once(
    api, browser_client, monkeypatch
):
    mask = Image.new("RGBA", (W, H), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), BOX)
    generation = submit(api, png_bytes(mask))
    Mask.objects.filter(pk=generation.mask_id).update(transparent=None)
    html = page(browser_client, f"/history/{generation.pk}/")
    assert "Mask as sent (transparent = regenerate)" in html
    assert Mask.objects.get(pk=generation.mask_id).transparent is True
    monkeypatch.setattr(files, "open_stored", not_again)
    assert "Mask as sent (transparent = regenerate)" in page(
        browser_client, f"/history/{generation.pk}/"
    )


def not_again(*args, **kwargs):
    raise AssertionError("the mask was decoded again")


def test_an_outpaint_without_a_mask_shows_no_mask_picture(api, browser_client):
    generation = submit(api, mask=None, outpaint='{"top": 8}')
    html = page(browser_client, f"/history/{generation.pk}/")
    assert figure_captions(html) == ["Input", "Regenerated area (red)"]


def test_delete_asks_first(api, browser_client):
    html = page(browser_client, f"/history/{submit(api).pk}/")
    assert 'data-confirm="Delete this generation and its images? This cannot be undone."' in html


def test_favicon(client, browser_client):
    response = client.get("/favicon.ico")
    assert response.status_code in (301, 302)
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    body = b"".join(icon.streaming_content) if icon.streaming else icon.content
    assert b"<svg" in body and b"#5b4bdb" in body
    html = page(browser_client, "/")
    assert f'<link rel="icon" href="{response["Location"]}" type="image/svg+xml">' in html


def test_a_classical_job_names_no_setting_it_did_not_use(api, browser_client, staff_user, client):
    """The studio sends steps, guidance and a scheduler with every job: after the classical
    engine ran, the detail page and the admin name none of them, nor a model; the JSON keeps
    them as sent (its shape is the same for every engine) and its warnings say they were not
    used."""
    generation = submit(
        api,
        prompt="a red rose",
        num_inference_steps=30,
        guidance_scale=7.5,
        scheduler="Euler a",
        engine="classical",
    )
    runs.generation_run(generation_id=str(generation.pk))
    metadata = api.get(f"/api/generations/{generation.pk}/").json()["metadata"]
    assert (metadata["num_inference_steps"], metadata["guidance_scale"]) == (30, 7.5)
    assert (metadata["scheduler"], metadata["loras"], metadata["controlnet"]) == (
        "Euler a",
        [],
        None,
    )
    assert metadata["prompt"] == "a red rose"  # as sent: the warnings say it was not followed
    assert metadata["engine"] == "classical" and metadata["model"] == "hybrid-patchmatch-poisson"
    warned = {w["field"] for w in metadata["warnings"]}
    assert {"prompt", "num_inference_steps", "guidance_scale", "scheduler"} <= warned
    html = page(browser_client, f"/history/{generation.pk}/")
    cells = header_cells(html)
    assert not {"Prompt", "Steps", "Guidance scale", "Scheduler", "Model"} & set(cells), cells
    assert '<p class="description">Object removal</p>' in html
    client.force_login(staff_user)
    staff_user.is_superuser = True
    staff_user.save()
    admin = page(client, f"/admin/inpainting/generation/{generation.pk}/change/")
    for word in ("Steps", "Guidance scale", "Scheduler", "the default model", "a red rose"):
        assert word not in admin, word
    assert "Object removal" in page(client, "/admin/inpainting/generation/")


def test_queued_tiles_say_their_place_from_one_reading_of_their_queue(api, browser_client):
    """Each queued tile carries its place in line; the page reads its queue once, however
    many queued jobs it shows (2 or 6: the same number of queries)."""

    def queries_for_page(count: int) -> tuple[int, list[str]]:
        for _ in range(count):
            submit(api, engine="classical")
        with CaptureQueriesContext(connection) as read:
            html = page(browser_client, "/history/")
        return len(read.captured_queries), re.findall(r'data-queue-position="(\d+)"', html)

    few, places = queries_for_page(2)
    assert sorted(places, key=int) == ["1", "2"]
    many, places = queries_for_page(4)
    assert sorted(places, key=int) == ["1", "2", "3", "4", "5", "6"]
    assert many == few
