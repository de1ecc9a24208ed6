"""The studio, round three (issue 40), on real photos at desktop and phone sizes: a phone's HEIC
photo opens (upright) and is stored upright; the lasso and the rectangle fill what they
enclose (Alt takes away), one undo step each; a downloaded mask loaded again gives the same
overlay; "Edit again" from the history brings back the image and the mask; a job's samples
are flipped through with the arrow keys and "Continue from this" goes on from the one shown,
with the mask kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

import inpainting.uploads  # noqa: F401 - registers pillow-heif's HEIF plugin, as the app does
from inpainting.models import Generation
from tests.browser.conftest import PHONE, screenshot
from tests.browser.helpers import (
    canvas_rgba,
    open_image,
    photo,
    set_brush,
    stroke,
    wait_overlay,
    wait_overlay_settled,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

#: An outline around the coffee cup of scikit-image's coffee photo (600 x 400), in its pixels.
CUP = [(150, 40), (330, 20), (470, 60), (500, 190), (440, 330), (260, 350), (140, 280), (120, 140)]
#: A hole taken away from the lasso with Alt held.
HOLE = [(280, 150), (360, 150), (360, 230), (280, 230)]


def to_page(box: dict, size: tuple[int, int], point) -> tuple[float, float]:
    """An image pixel's place on the page (the canvas' box at whatever zoom)."""
    return (
        box["x"] + (point[0] + 0.5) * box["width"] / size[0],
        box["y"] + (point[1] + 0.5) * box["height"] / size[1],
    )


def trace(page, box, size, points, *, close: bool = False) -> None:
    """Press at the first point, move through the others, release."""
    page.mouse.move(*to_page(box, size, points[0]))
    page.mouse.down()
    for point in points[1:] + (points[:1] if close else []):
        page.mouse.move(*to_page(box, size, point), steps=4)
    page.mouse.up()


def downloaded_mask(page) -> np.ndarray:
    """Click "Download mask": the PNG, white = regenerated, as a 0..255 array."""
    with page.expect_download() as info:
        page.click("#mask-download")
    return np.asarray(Image.open(info.value.path()).convert("L"))


def polygon_mask(size, points, hole=None) -> np.ndarray:
    drawn = Image.new("L", size, 0)
    ImageDraw.Draw(drawn).polygon(points, fill=255)
    if hole:
        ImageDraw.Draw(drawn).polygon(hole, fill=0)
    return np.asarray(drawn)


def agree_within_the_edge(got: np.ndarray, want: np.ndarray) -> None:
    """Equal pixels except within two pixels of the outline (the canvas' anti-aliasing)."""
    edge = Image.fromarray(want).filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(5))
    near_edge = np.asarray(edge) > 0
    differ = np.abs(got.astype(int) - want.astype(int)) > 64
    assert not (differ & ~near_edge).any(), np.argwhere(differ & ~near_edge)[:5]
    assert (got[want == 255] > 127).mean() > 0.99


@pytest.mark.parametrize("studio", [None, PHONE], indirect=True, ids=["desktop", "phone"])
def test_a_lasso_around_the_cup_fills_it_alt_takes_a_hole_away_each_one_undo(studio, tmp_path):
    path, size = photo(tmp_path, "coffee")
    box = open_image(studio, path, zoom=None)
    studio.click("#tool-lasso")
    trace(studio, box, size, CUP)  # released away from the start: the outline closes itself
    studio.keyboard.down("Alt")
    trace(studio, box, size, HOLE)
    studio.keyboard.up("Alt")
    wait_overlay(studio, 200, 200, painted=True)  # inside the cup, outside the hole
    agree_within_the_edge(downloaded_mask(studio), polygon_mask(size, CUP, HOLE))
    if studio.viewport_size != PHONE:
        screenshot(studio, "studio-lasso")
    studio.click("#undo")  # the hole goes, the lasso stays
    agree_within_the_edge(downloaded_mask(studio), polygon_mask(size, CUP))
    studio.click("#undo")
    assert downloaded_mask(studio).max() == 0

    studio.keyboard.press("r")  # the rectangle, by its key
    assert studio.get_attribute("#tool-rectangle", "aria-pressed") == "true"
    # The clicks above scrolled the page on a phone (a button under the pinned Generate bar is
    # brought above it first): the canvas where it is now.
    studio.locator("#viewport").evaluate("el => el.scrollIntoView({block: 'start'})")
    box = studio.locator("#image-canvas").bounding_box()
    trace(studio, box, size, [(100, 50), (250, 200)])
    want = np.zeros((size[1], size[0]), np.uint8)
    want[50:201, 100:251] = 255
    got = downloaded_mask(studio)
    assert (got[52:199, 102:249] == 255).all() and got[:48].max() == 0 and got[:, 253:].max() == 0


@pytest.mark.parametrize("studio", [None, PHONE], indirect=True, ids=["desktop", "phone"])
def test_a_downloaded_mask_loaded_again_gives_the_same_overlay(studio, tmp_path):
    path, size = photo(tmp_path, "chelsea")
    box = open_image(studio, path, zoom=None)
    scale = box["width"] / size[0]
    set_brush(studio, 30)
    stroke(studio, box, (120 * scale, 100 * scale), (260 * scale, 160 * scale))
    wait_overlay_settled(studio)
    before = overlay_pixels(studio)
    assert before.reshape(-1, 4)[130 * 451 + 190, 3] > 0  # the stroke, tinted
    mask_file = tmp_path / "kept-mask.png"
    Image.fromarray(downloaded_mask(studio)).save(mask_file)
    studio.click("#clear")
    wait_overlay(studio, 190, 130, painted=False)
    ready = studio.get_attribute("#overlay-canvas", "data-ready")
    studio.set_input_files("#mask-load-input", str(mask_file))
    wait_overlay_settled(studio, after=ready)
    assert np.array_equal(overlay_pixels(studio), before)
    studio.click("#undo")  # loading was one step: what was there before comes back (nothing)
    wait_overlay(studio, 190, 130, painted=False)


def overlay_pixels(page) -> np.ndarray:
    return canvas_rgba(page, "#overlay-canvas").reshape(-1)


@pytest.mark.parametrize("studio", [None, PHONE], indirect=True, ids=["desktop", "phone"])
def test_edit_again_from_the_history_restores_the_image_and_the_mask(studio, tmp_path, user):
    path, size = photo(tmp_path, "coffee")
    box = open_image(studio, path, zoom=None)
    studio.click("#tool-rectangle")
    trace(studio, box, size, [(200, 100), (400, 300)])
    drawn = downloaded_mask(studio)
    studio.fill("#prompt", "a teapot")
    studio.click("#generate")
    studio.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    generation = Generation.objects.get(owner=user)
    studio.goto(studio.url.rstrip("/") + f"/history/{generation.pk}/")
    studio.click("#edit-again")
    studio.wait_for_function(
        "() => document.getElementById('studio-message').textContent.startsWith('Opened')"
    )
    wait_overlay_settled(studio)
    assert studio.input_value("#prompt") == "a teapot"
    assert studio.eval_on_selector("#image-canvas", "c => [c.width, c.height]") == list(size)
    assert np.array_equal(downloaded_mask(studio), drawn)
    original = np.asarray(Image.open(path).convert("RGB"))
    shown = canvas_pixels(studio, "#image-canvas")
    assert np.array_equal(shown, original)


def canvas_pixels(page, selector: str) -> np.ndarray:
    return canvas_rgba(page, selector)[..., :3]


@pytest.mark.parametrize("studio", [None, PHONE], indirect=True, ids=["desktop", "phone"])
def test_three_samples_flip_with_the_arrow_keys_and_continue_from_the_chosen_one(
    studio, tmp_path, user
):
    path, size = photo(tmp_path, "chelsea")
    box = open_image(studio, path, zoom=None)
    scale = box["width"] / size[0]
    set_brush(studio, 30)
    stroke(studio, box, (150 * scale, 120 * scale), (230 * scale, 150 * scale))
    drawn = downloaded_mask(studio)
    studio.select_option("#engine", "diffusers")
    studio.fill("#prompt", "a red rose")
    studio.fill("#samples", "3")
    studio.click("#generate")
    studio.wait_for_selector("#result-panel:not([hidden])", timeout=120_000)
    assert studio.locator("#samples-strip button").count() == 3
    # The strip shows the samples' thumbnails, loaded; the compare view the pictures.
    strip = studio.locator("#samples-strip img")
    for index in range(3):
        assert strip.nth(index).get_attribute("src").endswith(f"/thumbnails/{index}.webp")
    studio.wait_for_function(
        "() => [...document.querySelectorAll('#samples-strip img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert studio.inner_text("#result-index") == "1 of 3"
    studio.locator("#compare").hover()
    studio.keyboard.press("ArrowRight")
    studio.keyboard.press("ArrowRight")
    assert studio.inner_text("#result-index") == "3 of 3"
    studio.keyboard.press("ArrowRight")  # the last one stays
    studio.keyboard.press("ArrowLeft")
    assert studio.inner_text("#result-index") == "2 of 3"
    assert studio.get_attribute("#after", "src").endswith("/images/1.png")
    if studio.viewport_size != PHONE:
        screenshot(studio, "studio-samples")
    # A focused slider (the compare's) takes its own arrows; the canvas' keys wait for the canvas.
    studio.focus("#compare-slider")
    studio.keyboard.press("ArrowRight")
    assert studio.inner_text("#result-index") == "2 of 3"
    assert studio.input_value("#compare-slider") == "51"
    studio.keyboard.press("e")
    assert studio.get_attribute("#tool-eraser", "aria-pressed") == "false"
    studio.click("#use-as-input")
    studio.wait_for_selector("#stage:not([hidden])")
    generation = Generation.objects.get(owner=user)
    with generation.images.get(index=1).file.open("rb") as handle:
        chosen = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
    wait_overlay_settled(studio)
    assert np.array_equal(canvas_pixels(studio, "#image-canvas"), chosen)
    assert np.array_equal(downloaded_mask(studio), drawn)  # the mask kept for a second pass


def test_a_phones_heic_photo_opens_upright_and_is_stored_upright(studio, tmp_path, user):
    path, (width, height) = photo(tmp_path, "coffee")
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was held upright: the picture is turned a quarter
    heic = tmp_path / "IMG_0001.HEIC"
    Image.open(path).save(heic, format="HEIF", exif=exif.tobytes(), quality=95)
    box = open_image(studio, heic, zoom=None)
    assert studio.eval_on_selector("#image-canvas", "c => [c.width, c.height]") == [height, width]
    studio.click("#tool-rectangle")
    trace(studio, box, (height, width), [(100, 250), (300, 400)])
    studio.click("#generate")
    studio.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
    generation = Generation.objects.get(owner=user)
    assert (generation.source.width, generation.source.height) == (height, width)
    studio.goto(studio.url.rstrip("/") + f"/history/{generation.pk}/")
    shown = studio.locator("img[alt='Input image']")
    shown.wait_for()
    studio.wait_for_function("() => document.querySelector(\"img[alt='Input image']\").complete")
    size = shown.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [height, width]
    upright = np.asarray(Image.open(path).convert("RGB").transpose(Image.Transpose.ROTATE_270))
    with generation.source.file.open("rb") as handle:
        stored = np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))
    assert np.abs(stored.astype(int) - upright.astype(int)).mean() < 6
