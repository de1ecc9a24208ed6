"""Owners read their files, staff review everything, media is private.

The walk over every URL as another user is tests/test_url_isolation.py."""

import pytest

from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def finished(api):
    body = post_img2img(api, image_png(), black_box_mask_png()).json()
    return wait_for_status(body["id"])


def test_owner_reads_every_file(finished, api):
    for url in [
        f"/api/generations/{finished.pk}/{name}"
        for name in ("images/0.png", "input.png", "mask.png", "mask-thumbnail.png")
    ]:
        response = api.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"] == "image/png"
        assert response["X-Content-Type-Options"] == "nosniff"
    assert api.get(f"/api/generations/{finished.pk}/images/1.png").status_code == 404


def test_staff_review_everything(finished, staff_api):
    assert staff_api.get("/api/generations/").json()["count"] == 0  # own history by default
    everyone = staff_api.get("/api/generations/?all=1").json()
    assert everyone["count"] == 1 and everyone["results"][0]["owner"] == "alice"
    assert staff_api.get(f"/api/generations/{finished.pk}/images/0.png").status_code == 200


def test_admin_lists_generations_for_staff(finished, admin_client):
    page = admin_client.get("/admin/inpainting/generation/")
    assert page.status_code == 200
    assert str(finished.pk).encode() in page.content
    detail = admin_client.get(f"/admin/inpainting/generation/{finished.pk}/change/")
    assert detail.status_code == 200


def test_no_public_media(finished, client):
    name = finished.images.first().file.name
    for url in (f"/media/{name}", f"/{name}", "/media/"):
        assert client.get(url).status_code == 404
