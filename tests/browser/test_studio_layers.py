"""The studio's layers (issue 80): two layers painted with two prompts, generated in one job
(the classical engine paints them in turn), saved as a project, the page reloaded, the project
opened again: both layers back with their names, prompts and masks."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from inpainting.models import Generation
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.browser.helpers import (
    canvas_rgba,
    open_image,
    photo,
    set_brush,
    settled_box,
    stroke,
    wait_overlay,
    wait_overlay_settled,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
W, H = 240, 160
#: Each layer's stroke (start, end; image pixels) and a point inside it.
SCARF = ((30, 50), (100, 50))
WINDOW = ((140, 110), (210, 110))
IN_SCARF, IN_WINDOW = (65, 50), (175, 110)
BRUSH = 24


@pytest.fixture
def input_png(tmp_path):
    """scikit-image's cat photo, cut to W x H (small: the job is quick)."""
    path, _ = photo(tmp_path, "chelsea")
    Image.open(path).crop((100, 40, 100 + W, 40 + H)).save(path)
    return path


def row(page, name: str):
    """The panel's row of the layer named ``name``."""
    rows = page.locator("#layer-list > li").all()
    return next(r for r in rows if r.locator(".layer-name").input_value() == name)


def name_layer(page, index: int, name: str, prompt: str) -> None:
    """Name the layer at ``index`` (bottom up) and give it its prompt."""
    layer = page.locator(f"#layer-list > li[data-index='{index}']")
    layer.locator(".layer-name").fill(name)
    layer.locator(".layer-prompt").fill(prompt)


def panel(page) -> list[tuple[str, str]]:
    """The panel's layers, top first: (name, prompt)."""
    return [
        (r.locator(".layer-name").input_value(), r.locator(".layer-prompt").input_value())
        for r in page.locator("#layer-list > li").all()
    ]


def row_colour(layer) -> tuple[int, int, int]:
    text = layer.evaluate("el => getComputedStyle(el).borderLeftColor")  # "rgb(r, g, b)"
    return tuple(int(v) for v in text[text.index("(") + 1 : -1].split(","))


def layers_canvas_at(page, point) -> np.ndarray:
    return canvas_rgba(page, "#layers-canvas")[point[1], point[0]]


def stroke_mask(start, end, size) -> np.ndarray:
    """The pixels a round brush of ``size`` covers along start-end (edge pixels aside)."""
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    (x0, y0), (x1, y1) = start, end
    t = np.clip(((xs - x0) * (x1 - x0) + (ys - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + 1e-9), 0, 1)
    return np.hypot(xs - (x0 + t * (x1 - x0)), ys - (y0 + t * (y1 - y0))) - size / 2


def test_two_layers_painted_generated_saved_as_a_project_and_opened_again(
    page, live_url, user, input_png, tmp_path
):
    errors = []  # script errors and refused resources: none but the 400 of a file no project
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_url, "alice", "pw-alice-123")
    box = open_image(page, input_png)
    page.select_option("#engine", "classical")
    page.fill("#prompt", "a quiet street")
    set_brush(page, BRUSH)

    page.click("#layer-add")
    name_layer(page, 0, "scarf", "a red scarf")
    stroke(page, box, *SCARF)
    page.click("#layer-add")
    name_layer(page, 1, "window", "a window")
    stroke(page, box, *WINDOW)
    assert panel(page) == [("window", "a window"), ("scarf", "a red scarf")]
    assert page.is_checked("#layer-list > li[data-index='1'] .layer-pick")  # painted last
    # The regenerated union in red as ever; the layer not being painted in its own colour.
    wait_overlay(page, *IN_SCARF, painted=True)
    wait_overlay(page, *IN_WINDOW, painted=True)
    wait_overlay_settled(page)
    scarf = layers_canvas_at(page, IN_SCARF)
    colour = np.array(row_colour(row(page, "scarf")))
    assert scarf[3] > 0 and np.abs(scarf[:3].astype(int) - colour).max() <= 2  # (premultiplied)
    assert layers_canvas_at(page, IN_WINDOW)[3] == 0  # (the one painted: the editor's)
    assert page.is_disabled("#samples") and page.input_value("#samples") == "1"
    screenshot(page, "studio-layers")

    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    assert page.get_attribute("#result-layered", "data-ran") == "in turn"
    assert "one after another" in page.inner_text("#result-layered")
    generation = Generation.objects.get(owner=user)
    assert generation.params["layers"] == [
        {"name": "scarf", "prompt": "a red scarf"},
        {"name": "window", "prompt": "a window"},
    ]
    assert generation.params["samples"] == 1 and generation.prompt == "a quiet street"
    screenshot(page, "studio-layers-result")

    with page.expect_download() as download:
        page.click("#save-project")
    saved = tmp_path / "project.zip"
    download.value.save_as(saved)
    # Each layer's mask as sent: white where its stroke went (the studio's polarity).
    with zipfile.ZipFile(saved) as packed:
        masks = [n for n in packed.namelist() if "layer" in n and n.endswith(".png")]
        assert len(masks) == 2, packed.namelist()
        for name, (start, end) in zip(sorted(masks), (SCARF, WINDOW), strict=True):
            sent = np.asarray(Image.open(io.BytesIO(packed.read(name))).convert("L")) > 127
            distance = stroke_mask(start, end, BRUSH)
            assert sent[distance < -1.5].all() and not sent[distance > 1.5].any(), name

    page.reload()
    page.wait_for_selector("#dropzone:not([hidden])")
    # A file that is no project: the server's words, under the drop zone.
    not_a_project = tmp_path / "notes.zip"
    not_a_project.write_bytes(b"not a zip")
    page.set_input_files("#project-input", str(not_a_project))
    error = page.locator("[data-error-for=project]")
    error.wait_for(state="visible")
    assert "not a ZIP file" in error.inner_text()
    assert [e for e in errors if "400 (Bad Request)" not in e] == [] and len(errors) == 1
    page.set_input_files("#project-input", str(saved))
    page.wait_for_selector("#layer-list > li >> nth=1")
    assert panel(page) == [("window", "a window"), ("scarf", "a red scarf")]
    assert page.input_value("#prompt") == "a quiet street"
    assert page.input_value("#engine") == "classical"
    assert "Opened the project: 2 layers" in page.inner_text("#studio-message")
    # Both masks back: the top one in the editor (the union's red), the other in its colour.
    wait_overlay(page, *IN_WINDOW, painted=True)
    wait_overlay(page, *IN_SCARF, painted=True)
    assert layers_canvas_at(page, IN_SCARF)[3] > 0
    page.locator("#layer-list > li[data-index='0'] .layer-pick").check()
    page.wait_for_function(
        "([x, y]) => document.getElementById('layers-canvas').getContext('2d')"
        ".getImageData(x, y, 1, 1).data[3] > 0",
        arg=list(IN_WINDOW),
    )
    assert layers_canvas_at(page, IN_SCARF)[3] == 0  # the scarf is the one painted now
    screenshot(page, "studio-layers-opened")

    # "Edit again" from the history brings the layers back too.
    page.goto(f"{live_url}/?edit={generation.pk}")
    page.wait_for_selector("#layer-list > li >> nth=1")
    assert panel(page) == [("window", "a window"), ("scarf", "a red scarf")]
    wait_overlay(page, *IN_SCARF, painted=True)
    assert layers_canvas_at(page, IN_SCARF)[3] > 0 and layers_canvas_at(page, IN_WINDOW)[3] == 0
    assert len(errors) == 1, errors


NARROW = {"width": 900, "height": 800}  # a small window: the settings beside a narrow canvas


@pytest.mark.parametrize("studio", [PHONE, NARROW], indirect=True, ids=["phone", "narrow"])
def test_the_layers_panel_at_phone_and_narrow_widths(studio, input_png):
    page = studio
    width = page.viewport_size["width"]
    box = open_image(page, input_png, zoom=None)
    for index, (name, line) in enumerate((("scarf", SCARF), ("window", WINDOW))):
        page.click("#layer-add")
        name_layer(page, index, name, f"a {name}")
        page.locator("#viewport").scroll_into_view_if_needed()  # (on a phone: above the panel)
        box = settled_box(page)
        scale = box["width"] / W
        stroke(page, box, *(tuple(v * scale for v in p) for p in line))
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Each row's controls side by side or on a line of their own, none over another.
    for layer in page.locator("#layer-list > li").all():
        boxes = [
            layer.locator(s).bounding_box()
            for s in (".layer-pick", ".layer-thumb", ".layer-name", ".layer-prompt", ".layer-tools")
        ]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                apart = (
                    a["x"] + a["width"] <= b["x"] + 0.5
                    or b["x"] + b["width"] <= a["x"] + 0.5
                    or a["y"] + a["height"] <= b["y"] + 0.5
                    or b["y"] + b["height"] <= a["y"] + 0.5
                )
                assert apart, (a, b)
            assert a["x"] >= 0 and a["x"] + a["width"] <= width
    page.locator("#layers-panel").scroll_into_view_if_needed()
    # A prompt has room for its words.
    assert page.locator(".layer-prompt").first.bounding_box()["width"] >= 200
    screenshot(page, "studio-layers-phone" if width == PHONE["width"] else "studio-layers-narrow")
