"""The first hour of a new user (issue 79): the mask polarity trap is said, not silently run."""

from __future__ import annotations

import pytest

from inpainting.models import Generation
from tests.helpers import H, W, image_png, post_img2img
from tests.images import box_mask, png_bytes

pytestmark = pytest.mark.django_db

#: A cup on a table: 3 % of the picture to regenerate.
CUP = (40, 26, 55, 37)


def mask_warnings(response) -> list[dict]:
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    return [w for w in generation.metadata.get("warnings", []) if w["field"] == "mask_mode"]


def test_a_studio_mask_sent_to_the_native_api_is_warned_of_naming_mask_mode(keyed_api):
    """The studio's "Download mask" is white = regenerated; this API's default is black. Sent
    as it is, such a mask selects nearly all the picture: the answer says which colour was
    regenerated and which mask_mode the other polarity wants."""
    studio_mask = png_bytes(box_mask(W, H, CUP, inpaint_white=True))
    sent = post_img2img(keyed_api, image_png(), studio_mask, wait="false", engine="classical")
    (warning,) = mask_warnings(sent)
    assert warning["message"].startswith("The mask selects 98% of the picture to regenerate")
    assert "mask_mode=black_inpaints its black pixels are regenerated" in warning["message"]
    assert "send mask_mode=white_inpaints" in warning["message"]
    detail = keyed_api.get(f"/api/generations/{sent.json()['id']}/").json()
    assert warning in detail["metadata"]["warnings"]
    # The same mask with its polarity said, and the box in this API's polarity: no warning.
    told = post_img2img(
        keyed_api,
        image_png(),
        studio_mask,
        wait="false",
        engine="classical",
        mask_mode="white_inpaints",
    )
    assert mask_warnings(told) == []
    native_mask = png_bytes(box_mask(W, H, CUP, inpaint_white=False))
    assert mask_warnings(post_img2img(keyed_api, image_png(), native_mask, wait="false")) == []


def test_the_health_checks_read_the_library_off_the_event_loop(client, settings):
    """LOAD_SD_INPAINT unset (as `make run` starts): whether diffusion runs is read from the
    library, a database query, which the asynchronous health views make in a thread."""
    settings.LOAD_SD_INPAINT, settings.INPAINT_ENGINE = None, "auto"
    for url in ("/api/health", "/sd-inpaint/health"):
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        assert answer.json()["fill_engine"] is True  # the library holds no diffusion model
