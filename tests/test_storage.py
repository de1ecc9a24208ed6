"""What is stored stays small (issue 52): sources compressed, derived pictures made once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from inpainting.models import Generation
from tests.helpers import post_img2img
from tests.images import box_mask, png_bytes

pytestmark = pytest.mark.django_db


def media_bytes() -> int:
    return sum(p.stat().st_size for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def flat_webp(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (90, 140, 200)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def test_a_tiny_flat_4096_px_upload_stays_small_on_disk(keyed_api):
    """A 1 KB flat 4096 px WebP (before: stored as a 50 MB uncompressed PNG per job)."""
    picture = flat_webp(4096)
    assert len(picture) < 2048
    mask = png_bytes(box_mask(4096, 4096, (1000, 1000, 1400, 1400), inpaint_white=False))
    before = media_bytes()
    response = post_img2img(keyed_api, picture, mask, wait="false")
    assert response.status_code == 202, response.content
    grown = media_bytes() - before
    print(f"\na {len(picture)} B flat 4096 px WebP job: the media folder grew {grown / 1e6:.2f} MB")
    assert grown <= 10 * 1024 * 1024
    generation = Generation.objects.get(pk=response.json()["id"])
    with generation.source.file.open("rb") as handle, Image.open(handle) as stored:
        assert stored.size == (4096, 4096)
        assert stored.getpixel((5, 5)) == (90, 140, 200)
