"""Another user's generation does not exist for you (404 everywhere); staff can review."""

import pytest

from inpainting.models import Generation
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def finished(api):
    body = post_img2img(api, image_png(), black_box_mask_png()).json()
    return wait_for_status(body["id"])


def endpoints(generation_id):
    base = f"/api/generations/{generation_id}"
    return [
        ("get", f"{base}/"),
        ("post", f"{base}/cancel/"),
        ("post", f"{base}/rerun/"),
        ("get", f"{base}/images/0.png"),
        ("get", f"{base}/input.png"),
        ("get", f"{base}/mask.png"),
        ("get", f"{base}/mask-thumbnail.png"),
        ("delete", f"{base}/"),
    ]


def test_another_user_gets_404_on_every_generation_endpoint(finished, other_api):
    for method, url in endpoints(finished.pk):
        response = getattr(other_api, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json()["status"] == "error"
    assert other_api.get("/api/generations/").json()["count"] == 0
    assert other_api.get("/api/generations/?all=1").json()["count"] == 0
    assert Generation.objects.filter(pk=finished.pk, status="succeeded").exists()


def test_another_user_with_an_api_key_gets_404_too(finished, other_user):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _, key = api_key_create(user=other_user, name="k")
    client = APIClient()
    for method, url in endpoints(finished.pk):
        response = getattr(client, method)(url, headers={"X-API-Key": key})
        assert response.status_code == 404, (method, url)


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
