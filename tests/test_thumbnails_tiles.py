"""History tiles at the size they are shown (issue 79): a tile is about 190 CSS px, so a 1x
screen loads a 320 px thumbnail (``srcset``) and a sharp screen the 640 px one it loaded
before; the 320 px one is made once, from the stored 640 px thumbnail, and kept beside the
job (docs/adr/0012)."""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client
from PIL import Image

from inpainting import engine
from inpainting.engine.images import SMALL_THUMBNAIL_SIDE, THUMBNAIL_MAX_SIDE
from inpainting.models import DerivedPicture, Generation
from inpainting.services import runs
from tests.helpers import post_img2img
from tests.images import box_mask, photo_2048, png_bytes

pytestmark = pytest.mark.django_db

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea")
#: A tile's picture: its address for old browsers, and the candidates by screen density.
TILE = re.compile(r'<img[^>]* src="(?P<src>[^"]+)" srcset="(?P<small>\S+) 1x, (?P<sharp>\S+) 2x"')


def fetched(client: Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    assert response["Content-Type"] == "image/webp"
    return b"".join(response.streaming_content)


def fail_if_called(*args, **kwargs):
    raise AssertionError("a stored thumbnail was made again")


def test_the_history_page_loads_tiles_the_size_they_are_shown_made_once(
    keyed_api, client, user, settings, monkeypatch
):
    settings.MAX_ACTIVE_GENERATIONS_PER_USER = 20
    ids = []
    for job, name in enumerate(PHOTOS * 2):
        picture = photo_2048(name)
        with Image.open(io.BytesIO(picture)) as opened:
            width, height = opened.size
        mask = box_mask(width, height, (100, 100, 164, 164), inpaint_white=False)
        response = post_img2img(keyed_api, picture, png_bytes(mask), wait="false", seed=job)
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    for job_id in ids[:6]:  # two are still queued: their tiles show the input
        runs.generation_run(generation_id=job_id)
    client.force_login(user)
    html = client.get("/history/").content.decode()
    tiles = [match.groupdict() for match in TILE.finditer(html)]
    assert len(tiles) == 8, html
    assert all(tile["sharp"] == tile["src"] for tile in tiles)  # a sharp screen's: the 640 px
    assert sum(tile["src"].endswith("/thumbnails/input.webp") for tile in tiles) == 2

    before = [fetched(client, tile["src"]) for tile in tiles]  # what every screen loaded
    made = DerivedPicture.objects.count()
    small = [fetched(client, tile["small"]) for tile in tiles]
    for tile, data in zip(tiles, small, strict=True):
        assert re.search(rf"/thumbnails/(input|\d+)-{SMALL_THUMBNAIL_SIDE}\.webp$", tile["small"])
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "WEBP" and max(picture.size) == SMALL_THUMBNAIL_SIDE
    for data in before:
        with Image.open(io.BytesIO(data)) as picture:
            assert max(picture.size) == THUMBNAIL_MAX_SIDE
    was, now = sum(map(len, before)), sum(map(len, small))
    print(f"\nthe history page of 8 jobs of 2048 px photos: {was / 1e3:.0f} kB of tiles at 640 px,")
    print(f"{now / 1e3:.0f} kB at {SMALL_THUMBNAIL_SIDE} px (a 1x screen)")
    assert now < was / 2, (now, was)
    assert DerivedPicture.objects.count() == made + 8

    # Made once: the next page decodes nothing and serves the same bytes.
    monkeypatch.setattr(engine, "thumbnail_webp", fail_if_called)
    again = [fetched(client, tile["small"]) for tile in tiles]
    assert again == small and DerivedPicture.objects.count() == made + 8

    # Kept beside the job (counted in its owner's usage, deleted with it, as every derived
    # picture is).
    first = Generation.objects.get(pk=ids[0])
    kinds = set(first.derived.values_list("kind", flat=True))
    assert f"thumbnail-0-{SMALL_THUMBNAIL_SIDE}" in kinds
    # Only the one side: any other is no picture of the job.
    assert client.get(f"/api/generations/{first.pk}/thumbnails/0-100.webp").status_code == 404
