"""The web process' one bounded gate for pixel work (inpainting/gate.py, issue 51): a
process-wide budget of pixels and a per-user count, refusals with Retry-After, and every pixel
path of a request passing it (the mask preview, a picture made upright, a link's format)."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from inpainting import gate
from inpainting.gate import PIXELS, GateFull
from inpainting.models import Generation
from inpainting.services import images
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_gate(settings):
    settings.WEB_PIXELS_AT_ONCE = 1000
    settings.WEB_PIXELS_SMALL = 10
    settings.WEB_PIXEL_REQUESTS_PER_USER = 2
    settings.WEB_PIXEL_WAIT_SECONDS = 0.2
    settings.WEB_PIXEL_RETRY_SECONDS = 7
    assert PIXELS.in_use() == (0, 0)
    yield settings
    assert PIXELS.in_use() == (0, 0)  # every ticket given back


def test_a_user_past_their_count_is_told_to_come_back(small_gate):
    first = PIXELS.acquire(user=1, pixels=100, what="upscale")
    second = PIXELS.acquire(user=1, pixels=100, what="upscale")
    with pytest.raises(GateFull) as refused:
        PIXELS.acquire(user=1, pixels=100, what="upscale")
    assert (refused.value.status, refused.value.retry_after) == (429, 7)
    assert "2 picture requests in progress" in refused.value.message
    other = PIXELS.acquire(user=2, pixels=100, what="upscale")  # another user's share
    small = PIXELS.acquire(user=1, pixels=10, what="preview")  # small work is not counted
    for ticket in (first, second, other, small):
        PIXELS.release(ticket)


@pytest.mark.serial  # measures time
def test_a_full_process_waits_then_answers_503(small_gate):
    held = PIXELS.acquire(user=1, pixels=900, what="upscale")
    started = time.monotonic()
    with pytest.raises(GateFull) as refused:
        PIXELS.acquire(user=2, pixels=200, what="upscale")
    assert refused.value.status == 503 and refused.value.retry_after == 7
    assert 0.2 <= time.monotonic() - started < 1.0
    # A waiting request gets in as soon as room is made.
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(PIXELS.acquire(user=2, pixels=200, what="upscale"))
    )
    small_gate.WEB_PIXEL_WAIT_SECONDS = 5
    waiter.start()
    time.sleep(0.1)
    PIXELS.release(held)
    waiter.join(2)
    assert got
    PIXELS.release(got[0])


def test_work_larger_than_the_budget_waits_for_an_empty_gate(small_gate):
    ticket = PIXELS.acquire(user=1, pixels=10**9, what="upscale")
    assert ticket.pixels == 1000
    with pytest.raises(GateFull):
        PIXELS.acquire(user=2, pixels=20, what="preview")
    PIXELS.release(ticket)


def test_the_mask_preview_passes_the_gate(api, small_gate, settings):
    """``POST /api/masks/effective`` while the process' budget is taken: a 503 in the API's
    error shape with Retry-After; once it is free, the preview."""
    settings.WEB_PIXELS_AT_ONCE = 64 * 64 * 3
    mask = png_bytes(Image.new("L", (64, 64), 0))
    form = {"width": 64, "height": 64}

    def preview():
        return api.post(
            "/api/masks/effective", {**form, "mask": io.BytesIO(mask)}, format="multipart"
        )

    held = PIXELS.acquire(user="someone else", pixels=100, what="upscale")
    busy = preview()
    assert busy.status_code == 503
    assert busy["Retry-After"] == "7"
    assert busy.json()["message"].startswith("The server is busy making other pictures")
    PIXELS.release(held)
    answer = preview()
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"


def test_an_upload_made_upright_passes_the_gate(api, user, small_gate, settings):
    settings.WEB_PIXELS_AT_ONCE = 10_000
    settings.WEB_PIXEL_REQUESTS_PER_USER = 1
    picture = png_bytes(Image.new("RGB", (64, 64), "red"))
    held = PIXELS.acquire(user=user.pk, pixels=100, what="upscale")
    refused = api.post("/api/images/png", {"image": io.BytesIO(picture)}, format="multipart")
    assert refused.status_code == 429 and refused["Retry-After"] == "7"
    PIXELS.release(held)
    answer = api.post("/api/images/png", {"image": io.BytesIO(picture)}, format="multipart")
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as made:
        assert made.size == (64, 64)


def test_waiting_requests_get_room_in_the_order_they_came(small_gate):
    """A large request that waits is not overtaken by small work that came after it (which,
    under steady small traffic, could keep it waiting for ever)."""
    small_gate.WEB_PIXEL_WAIT_SECONDS = 5
    held = PIXELS.acquire(user=1, pixels=600, what="upscale")
    order = []

    def ask(user, pixels):
        ticket = PIXELS.acquire(user=user, pixels=pixels, what="picture")
        order.append(pixels)
        PIXELS.release(ticket)

    large = threading.Thread(target=ask, args=(2, 900))
    large.start()
    time.sleep(0.1)
    small = threading.Thread(target=ask, args=(3, 5))  # would fit now, but comes second
    small.start()
    time.sleep(0.1)
    assert order == []
    PIXELS.release(held)
    large.join(2)
    small.join(2)
    assert order == [900, 5]


def test_a_user_past_half_the_budget_waits_for_their_own_work_and_others_go_past(small_gate):
    """Issue 76: no user holds more than half of the budget. A second request that would take
    its user past half waits until the user's first is done (not a 429: the studio loads a
    large photo's pictures in parallel), and another user's request goes past it meanwhile."""
    small_gate.WEB_PIXEL_WAIT_SECONDS = 10
    mine = PIXELS.acquire(user=1, pixels=400, what="picture")
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(PIXELS.acquire(user=1, pixels=300, what="mask"))
    )
    waiter.start()
    time.sleep(0.2)
    assert not got  # 400 + 300 is past half of 1000: it waits
    other = PIXELS.acquire(user=2, pixels=300, what="picture")  # goes past it at once
    assert not got
    PIXELS.release(mine)
    waiter.join(5)
    assert got and PIXELS.in_use()[0] == 600
    for ticket in (*got, other):
        PIXELS.release(ticket)


def test_each_kind_of_work_holds_its_named_copies_of_its_pictures():
    """The cost table (``gate.Work``): a kind of work holds ``copies`` times the pixels of
    its pictures while it runs, and lets them go after; a refusal names its ``what``."""
    assert gate.SELECTION.pixels((100, 50)) == 4 * 5_000
    assert gate.FITTED.pixels((100, 50), (40, 20)) == 2 * (5_000 + 800)
    before, _ = PIXELS.in_use()
    with PIXELS.doing(gate.UPRIGHT, (100, 50), user="cost-table"):
        assert PIXELS.in_use()[0] == before + 3 * 5_000
    assert PIXELS.in_use()[0] == before
    assert {work.what for work in vars(gate).values() if isinstance(work, gate.Work)} == {
        "job",
        "picture",
        "canvas",
        "partial image",
        "mask preview",
        "mask",
        "page",
        "upscale",
    }


def test_a_text_to_image_canvas_passes_the_gate(keyed_api, user, small_gate, settings):
    """The empty canvas of AUTOMATIC1111's txt2img and OpenAI's generations is made in the web
    process on the user's share of the gate: its cost is two copies of its pixels; a canvas
    past the process' budget is refused (a 503, in the API's own shape) before any job is
    stored."""
    settings.INPAINT_ENGINE, settings.LOAD_SD_INPAINT = "auto", True  # a diffusion model runs
    settings.WEB_PIXELS_AT_ONCE = 2 * 64 * 48
    settings.WEB_PIXEL_WAIT_SECONDS = 0
    canvas, mask = images.blank_canvas(64, 48, user=user)
    assert Image.open(canvas).size == Image.open(mask).size == (64, 48)
    assert gate.BLANK_CANVAS.pixels((64, 48)) == settings.WEB_PIXELS_AT_ONCE
    held = PIXELS.acquire(user="another", pixels=64 * 48, what="upscale")  # half the budget
    try:
        refused = keyed_api.post(
            "/sdapi/v1/txt2img", {"prompt": "a cat", "width": 64, "height": 48}, format="json"
        )
        assert refused.status_code == 503 and "canvas" in refused.json()["detail"]
        refused = keyed_api.post(
            "/v1/images/generations", {"prompt": "a cat", "size": "64x48"}, format="json"
        )
        assert refused.status_code == 503 and "canvas" in refused.json()["error"]["message"]
    finally:
        PIXELS.release(held)
    assert Generation.objects.count() == 0
