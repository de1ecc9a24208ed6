"""The history's tiles in a browser (issue 79): a 1x screen loads the 320 px thumbnails, a
sharp one the 640 px ones (``srcset``), and an outpaint's tile shows the whole picture (fitted
in its square, not cropped to it)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import photo
from tests.helpers import wait_for_status
from tests.images import box_mask, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

#: The tiles' ground (static/css/app.css, ``.tile img``) where the picture does not reach.
GROUND = (238, 238, 238)


def submit(live_url: str, key: str, path, **data) -> str:
    files = {"image": ("photo.png", path.read_bytes(), "image/png")}
    if "outpaint" not in data:
        with Image.open(path) as picture:
            mask = box_mask(*picture.size, (250, 150, 330, 230), inpaint_white=False)
        files["mask"] = ("mask.png", png_bytes(mask), "image/png")
    response = requests.post(
        f"{live_url}/api/img2img",
        files=files,
        data={"wait": "false", **data},
        headers={"X-API-Key": key},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def tiles_loaded(browser, live_url: str, scale: int) -> tuple[object, list[str], list[str]]:
    """The history page on a screen of ``scale`` device pixels per CSS pixel: the page, each
    tile's picture as loaded (``currentSrc``) and every thumbnail the browser fetched."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, device_scale_factor=scale
    )
    page = context.new_page()
    fetched = []
    page.on(
        "response",
        lambda r: fetched.append(r.url) if "/thumbnails/" in r.url else None,
    )
    log_in(page, live_url, "alice", "pw-alice-123")
    page.goto(f"{live_url}/history/")
    tiles = page.locator(".tile img")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.tile img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    shown = tiles.evaluate_all("images => images.map((img) => img.currentSrc)")
    return page, shown, fetched


def test_tiles_load_the_size_they_are_shown_and_an_outpaint_shows_whole(
    browser, live_url, user, api_key, tmp_path
):
    path, _ = photo(tmp_path, "coffee")  # 600 x 400
    removal = submit(live_url, api_key, path)
    outpaint = submit(live_url, api_key, path, outpaint=json.dumps({"left": 300, "right": 300}))
    for job in (removal, outpaint):
        assert wait_for_status(job).status == "succeeded"

    page, shown, fetched = tiles_loaded(browser, live_url, scale=1)
    try:
        assert sorted(url.rsplit("/", 3)[-3] for url in shown) == sorted([removal, outpaint])
        assert all(url.endswith("/thumbnails/0-320.webp") for url in shown), shown
        assert not [url for url in fetched if url.endswith("/thumbnails/0.webp")], fetched
        sizes = page.locator(".tile img").evaluate_all(
            "images => images.map((img) => [img.naturalWidth, img.naturalHeight])"
        )
        assert sorted(sizes) == [[320, 106], [320, 213]]  # 1200 x 400 (its 640 x 213) and 600 x 400
        screenshot(page, "history-tiles")

        # The outpaint (3 : 1) fitted in its square: ground above and below the picture, and
        # the picture from the square's left edge to its right one.
        tile = page.locator(f"[data-generation-id='{outpaint}'] img")
        pixels = np.asarray(Image.open(io.BytesIO(tile.screenshot())).convert("RGB")).astype(int)
        height, width, _ = pixels.shape
        ground = np.abs(pixels - GROUND).max(axis=2) <= 3
        # (the status badge sits in the square's top left corner: the rows under it)
        assert ground[height // 5 : height * 3 // 10].all() and ground[-(height // 4) :].all()
        middle = ground[height // 2]
        assert not middle[2] and not middle[width - 3] and middle.mean() < 0.05
    finally:
        page.context.close()

    page, shown, fetched = tiles_loaded(browser, live_url, scale=2)
    try:  # a sharp screen: the 640 px thumbnails, and no other
        assert all(url.endswith("/thumbnails/0.webp") for url in shown), shown
        assert not [url for url in fetched if url.endswith("-320.webp")], fetched
    finally:
        page.context.close()
