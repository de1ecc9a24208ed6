"""What is stored stays small (issue 52): sources compressed, derived pictures made once."""

from __future__ import annotations

import importlib
import io
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.utils import timezone
from PIL import Image

from inpainting import engine
from inpainting.answers import native
from inpainting.models import Generation, reserved_bytes, stored_bytes
from inpainting.services import files, retention, runs
from inpainting.services.generations import size_words
from tests.helpers import post_img2img
from tests.images import box_mask, photo_2048, png_bytes

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
    runs.generation_run(generation_id=response.json()["id"])  # its output and thumbnail too
    grown = media_bytes() - before
    print(f"\na {len(picture)} B flat 4096 px WebP job: the media folder grew {grown / 1e6:.2f} MB")
    assert grown <= 10_000_000
    generation = Generation.objects.get(pk=response.json()["id"])
    with generation.source.file.open("rb") as handle, Image.open(handle) as stored:
        assert stored.size == (4096, 4096)
        assert stored.getpixel((5, 5)) == (90, 140, 200)


def noise_job_run(api, size: tuple[int, int]) -> Generation:
    """A job on a noise picture of ``size`` with a small hole, run as the worker runs it."""
    response = post_img2img(
        api,
        png_bytes(Image.effect_noise(size, 40).convert("RGB")),
        png_bytes(box_mask(*size, (20, 20, 50, 50), inpaint_white=False)),
        wait="false",
    )
    generation = Generation.objects.get(pk=response.json()["id"])
    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    return generation


def fail_if_called(*args, **kwargs):
    raise AssertionError("a stored derived picture was made again")


@pytest.mark.serial  # measures time
def test_the_regenerated_area_is_made_once_and_served_as_a_file(
    keyed_api, monkeypatch, django_capture_on_commit_callbacks
):
    """The first GET of a 2048 px job's ``regenerated.png`` makes it and keeps it beside the
    job; the second decodes nothing (before: 2.4 to 3.2 s of web CPU on every GET of a 4096 px
    job); deleting the job deletes it."""
    picture = png_bytes(Image.new("RGB", (2048, 2048), (30, 60, 90)))
    mask = png_bytes(box_mask(2048, 2048, (500, 500, 900, 900), inpaint_white=False))
    response = post_img2img(keyed_api, picture, mask, wait="false")
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    url = f"/api/generations/{generation.pk}/regenerated.png"
    first = keyed_api.get(url)
    assert first.status_code == 200
    made = b"".join(first.streaming_content)
    monkeypatch.setattr(engine, "prepare_canvas", fail_if_called)
    monkeypatch.setattr(files, "open_stored", fail_if_called)
    monkeypatch.setattr(engine, "encode_png", fail_if_called)
    started = time.perf_counter()
    second = keyed_api.get(url)
    body = b"".join(second.streaming_content)
    seconds = time.perf_counter() - started
    print(f"\nregenerated.png of a 2048 px job, second GET: {seconds * 1000:.0f} ms")
    assert second.status_code == 200 and body == made
    assert seconds < 0.15
    assert second["Cache-Control"].startswith("private")
    stored = Path(settings.MEDIA_ROOT) / generation.derived.get(kind="regenerated").file.name
    assert stored.is_file()
    with django_capture_on_commit_callbacks(execute=True):  # django-cleanup deletes on commit
        assert keyed_api.delete(f"/api/generations/{generation.pk}/").status_code == 204
    assert not stored.exists()


def test_an_openai_link_in_another_format_is_encoded_once(keyed_api, monkeypatch):
    """The OpenAI ``url`` links (anonymous, an hour) re-encoded WebP on every GET (1.2 s of CPU
    each for a large output); the second GET of a link encodes nothing."""
    response = post_img2img(
        keyed_api,
        png_bytes(Image.new("RGB", (256, 256), (200, 100, 50))),
        png_bytes(box_mask(256, 256, (64, 64, 128, 128), inpaint_white=False)),
        wait="false",
    )
    generation = Generation.objects.get(pk=response.json()["id"])
    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    image = generation.images.get()
    url = f"/v1/images/files/{native.image_link_token(image, 'webp', 80)}"
    anonymous = Client()
    first = anonymous.get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/webp"
    made = b"".join(first.streaming_content)
    monkeypatch.setattr(engine, "encode_as", fail_if_called)
    second = anonymous.get(url)
    assert second.status_code == 200 and b"".join(second.streaming_content) == made
    with Image.open(io.BytesIO(made)) as decoded:
        assert decoded.format == "WEBP" and decoded.size == (256, 256)


def test_a_user_over_the_storage_quota_is_told_the_usage_and_nothing_is_stored(
    keyed_api, user, other_api, settings
):
    """STORAGE_QUOTA_BYTES_PER_USER: a job is refused once the user's pictures take the quota,
    with the usage and how to free it; nothing of the refused request is stored; other users
    are not affected; deleting a job makes room."""
    settings.STORAGE_QUOTA_BYTES_PER_USER = 20_000
    picture = png_bytes(Image.effect_noise((128, 128), 60).convert("RGB"))
    mask = png_bytes(box_mask(128, 128, (32, 32, 64, 64), inpaint_white=False))
    first = post_img2img(keyed_api, picture, mask, wait="false")
    assert first.status_code == 202
    used = stored_bytes(user_id=user.pk)
    assert used >= 20_000  # the noise picture alone is larger than the quota
    rows, stored = Generation.objects.count(), media_bytes()
    refused = post_img2img(keyed_api, picture, mask, wait="false")
    assert refused.status_code == 403
    message = refused.json()["message"]
    reserved = reserved_bytes(user_id=user.pk)  # its output's, while it is queued
    assert reserved == 3 * 128 * 128
    assert (
        f"take {size_words(used + reserved)} (with {size_words(reserved)} kept for the " in message
    )
    assert "of your 20 KB of storage" in message
    assert "delete generations" in message
    assert Generation.objects.count() == rows and media_bytes() == stored
    assert post_img2img(other_api, picture, mask, wait="false").status_code == 202
    assert keyed_api.delete(f"/api/generations/{first.json()['id']}/").status_code == 204
    assert post_img2img(keyed_api, picture, mask, wait="false").status_code == 202


def test_a_retention_run_deletes_old_jobs_and_their_files_and_nothing_younger(
    keyed_api, settings, django_capture_on_commit_callbacks
):
    """RETENTION_DAYS: jobs that ended before the cut-off go, rows and files (their inputs,
    outputs and derived pictures); a younger job, and one still queued, stay. Off (0): none."""

    def finished_job(days_ago: float) -> Generation:
        generation = noise_job_run(keyed_api, (96, 96))
        assert keyed_api.get(f"/api/generations/{generation.pk}/regenerated.png").status_code == 200
        Generation.objects.filter(pk=generation.pk).update(
            finished_at=timezone.now() - timedelta(days=days_ago)
        )
        return generation

    old, young = finished_job(40), finished_job(20)
    queued = post_img2img(
        keyed_api,
        png_bytes(Image.new("RGB", (64, 64), "white")),
        png_bytes(box_mask(64, 64, (8, 8, 16, 16), inpaint_white=False)),
        wait="false",
    ).json()["id"]
    old_files = [
        Path(settings.MEDIA_ROOT) / name
        for name in (
            old.source.file.name,
            old.mask.file.name,
            old.images.get().file.name,
            old.derived.get().file.name,
        )
    ]
    assert all(path.is_file() for path in old_files)
    settings.RETENTION_DAYS = 0
    assert retention.retention_run() == {"deleted": 0, "retention_days": 0}
    settings.RETENTION_DAYS = 30
    with django_capture_on_commit_callbacks(execute=True):  # django-cleanup deletes on commit
        assert retention.retention_run() == {"deleted": 1, "retention_days": 30}
    assert not Generation.objects.filter(pk=old.pk).exists()
    assert not any(path.exists() for path in old_files)
    assert set(Generation.objects.values_list("pk", flat=True)) == {young.pk, uuid.UUID(queued)}
    assert (Path(settings.MEDIA_ROOT) / young.images.get().file.name).is_file()


def test_staff_see_each_users_storage_and_metrics_the_total(
    keyed_api, user, django_user_model, settings, django_assert_num_queries
):
    post_img2img(
        keyed_api,
        png_bytes(Image.effect_noise((128, 128), 60).convert("RGB")),
        png_bytes(box_mask(128, 128, (32, 32, 64, 64), inpaint_white=False)),
        wait="false",
    )
    with django_assert_num_queries(1):  # the quota check reads it twice for every job
        used = stored_bytes(user_id=user.pk)
    assert used > 0 and stored_bytes() == used
    assert stored_bytes(user_id=django_user_model.objects.create_user("empty").pk) == 0
    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("admin", password="pw-ad-123"))
    page = staff.get("/admin/accounts/user/").content.decode()
    assert "storage" in page and f"{used / 1e6:,.1f} MB" in page
    settings.METRICS_TOKEN = "scrape-secret-123"
    metrics = Client().get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
    assert f"dreamlayer_stored_bytes {float(used)}" in metrics.content.decode()


PHOTOS = ("astronaut", "coffee", "rocket", "astronaut-box-before")


def page_pictures(client: Client, html: str) -> list[tuple[str, bytes]]:
    """Every picture a page shows (its ``<img src>``), fetched as the browser would."""
    found = []
    for src in re.findall(r'<img[^>]* src="([^"]+)"', html):
        response = client.get(src)
        assert response.status_code == 200, src
        found.append((src, b"".join(response.streaming_content)))
    return found


def test_the_history_page_of_16_jobs_from_2048_px_photos_loads_under_3_mb(
    keyed_api, client, user, settings, monkeypatch
):
    """Before: 57 MB for 16 tiles (no thumbnails: each tile loaded a whole output or input).
    Each tile is its job's thumbnail, made by the worker with the output, so the page and its
    pictures decode nothing in the web process."""
    settings.MAX_ACTIVE_GENERATIONS_PER_USER = 20
    photos = [photo_2048(name) for name in PHOTOS]
    ids = []
    for job in range(16):
        picture = photos[job % len(photos)]
        with Image.open(io.BytesIO(picture)) as opened:
            width, height = opened.size
        # A small area: the classical engine fills it in under a second at 2048 px.
        mask = box_mask(width, height, (100, 100, 164, 164), inpaint_white=False)
        response = post_img2img(keyed_api, picture, png_bytes(mask), wait="false")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    for job_id in ids[:12]:  # four are still queued: their tiles show the input
        runs.generation_run(generation_id=job_id)
    monkeypatch.setattr(files, "open_stored", fail_if_called)
    monkeypatch.setattr(engine, "thumbnail_webp", fail_if_called)
    client.force_login(user)
    html = client.get("/history/").content.decode()
    shown = page_pictures(client, html)
    assert len(shown) == 16
    total = sum(len(data) for _, data in shown)
    print(f"\nthe history page of 16 jobs of 2048 px photos: {total / 1e6:.2f} MB of pictures")
    assert total < 3_000_000
    for src, data in shown:
        with Image.open(io.BytesIO(data)) as tile:
            assert tile.format == "WEBP" and max(tile.size) == 640, src
    inputs = [src for src, _ in shown if src.endswith("/thumbnails/input.webp")]
    assert len(inputs) == 4  # the queued jobs'
    full = sum(len(b"".join(client.get(full_size(src)).streaming_content)) for src, _ in shown)
    print(f"the same pictures at full size: {full / 1e6:.2f} MB")


def full_size(thumbnail: str) -> str:
    """The address of the picture a thumbnail shows (an output's, the input, the regenerated
    area's, the mask's)."""
    thumbnail = re.sub(r"/thumbnails/(\d+)\.webp$", r"/images/\1.png", thumbnail)
    return re.sub(r"/thumbnails/(\w+)\.webp$", r"/\1.png", thumbnail)


def test_the_detail_page_shows_thumbnails_made_once_and_deleted_with_the_job(
    keyed_api, client, user, monkeypatch, django_capture_on_commit_callbacks
):
    """Every picture of the detail page is a thumbnail linked to the picture at full size; the
    regenerated area's and the mask's are made at their first request and kept (the second
    page decodes nothing); they count in the owner's usage and go with the job."""
    picture = photo_2048("coffee")
    with Image.open(io.BytesIO(picture)) as opened:
        width, height = opened.size
    mask = box_mask(width, height, (100, 100, 164, 164), inpaint_white=False)
    response = post_img2img(keyed_api, picture, png_bytes(mask), wait="false")
    generation = Generation.objects.get(pk=response.json()["id"])
    runs.generation_run(generation_id=str(generation.pk))
    client.force_login(user)
    url = f"/history/{generation.pk}/"
    before = stored_bytes(user_id=user.pk)
    first = page_pictures(client, client.get(url).content.decode())
    kinds = sorted(generation.derived.values_list("kind", flat=True))
    assert kinds == ["thumbnail-mask", "thumbnail-regenerated"]
    assert stored_bytes(user_id=user.pk) == before + sum(
        row.stored_bytes for row in generation.derived.all()
    )
    monkeypatch.setattr(files, "open_stored", fail_if_called)
    monkeypatch.setattr(engine, "thumbnail_webp", fail_if_called)
    monkeypatch.setattr(engine, "prepare_canvas", fail_if_called)
    html = client.get(url).content.decode()
    again = page_pictures(client, html)
    assert again == first
    assert [src.rsplit("/", 1)[1] for src, _ in again] == [
        "input.webp",
        "regenerated.webp",
        "mask.webp",
        "0.webp",
    ]
    for src, data in again:
        assert f'<a href="{full_size(src)}"' in html
        with Image.open(io.BytesIO(data)) as shown:
            assert shown.format == "WEBP" and max(shown.size) == 640
    total = sum(len(data) for _, data in again)
    print(f"\nthe detail page of a 2048 px photo's job: {total / 1e3:.0f} KB of pictures")
    assert total < 400_000
    paths = [Path(settings.MEDIA_ROOT) / row.file.name for row in generation.derived.all()]
    paths += [
        Path(settings.MEDIA_ROOT) / generation.source.thumbnail.name,
        Path(settings.MEDIA_ROOT) / generation.images.get().thumbnail.name,
    ]
    assert all(path.is_file() for path in paths)
    with django_capture_on_commit_callbacks(execute=True):  # django-cleanup deletes on commit
        assert keyed_api.delete(f"/api/generations/{generation.pk}/").status_code == 204
    assert not any(path.exists() for path in paths)


def test_a_job_stored_before_thumbnails_gets_them_at_the_first_request(keyed_api, monkeypatch):
    """Rows written before thumbnails existed have none: the first request makes one (through
    the gate) and keeps it beside the job; the second decodes nothing."""
    generation = noise_job_run(keyed_api, (900, 700))
    for row in (generation.source, generation.images.get()):
        row.thumbnail.delete(save=True)  # as rows stored before issue 52
    made = {}
    for part in ("input", "0"):
        answer = keyed_api.get(f"/api/generations/{generation.pk}/thumbnails/{part}.webp")
        assert answer.status_code == 200 and answer["Content-Type"] == "image/webp"
        made[part] = b"".join(answer.streaming_content)
        with Image.open(io.BytesIO(made[part])) as shown:
            assert shown.size == (640, 498)
    assert sorted(generation.derived.values_list("kind", flat=True)) == [
        "thumbnail-0",
        "thumbnail-input",
    ]
    monkeypatch.setattr(files, "open_stored", fail_if_called)
    for part in ("input", "0"):
        answer = keyed_api.get(f"/api/generations/{generation.pk}/thumbnails/{part}.webp")
        assert b"".join(answer.streaming_content) == made[part]
    missing = keyed_api.get(f"/api/generations/{generation.pk}/thumbnails/7.webp")
    assert missing.status_code == 404 and missing.json()["message"] == "No such image."


def test_rows_stored_before_their_bytes_were_counted_are_counted_by_the_migration(keyed_api, user):
    """Rows written before migration 0017 counted 0 bytes: the quota, the admin and /metrics
    missed what older jobs hold. Migration 0025 measures their files once."""
    response = post_img2img(
        keyed_api,
        png_bytes(Image.new("RGB", (256, 256), (10, 120, 40))),
        box_mask_png_256(),
        wait="false",
    )
    assert response.status_code == 202, response.content
    runs.generation_run(generation_id=response.json()["id"])
    counted = stored_bytes(user_id=user.pk)
    generation = Generation.objects.get(pk=response.json()["id"])
    assert counted > 0 and generation.images.count() == 1
    for rows in (
        type(generation.source).objects.filter(pk=generation.source.pk),
        type(generation.mask).objects.filter(pk=generation.mask.pk),
        generation.images.all(),
        generation.derived.all(),
    ):
        rows.update(stored_bytes=0)
    assert stored_bytes(user_id=user.pk) == 0
    migration = importlib.import_module("inpainting.migrations.0025_stored_bytes_of_older_rows")
    migration.count_stored_bytes(apps, None)
    assert stored_bytes(user_id=user.pk) == counted


def box_mask_png_256() -> bytes:
    return png_bytes(box_mask(256, 256, (100, 100, 140, 140), inpaint_white=False))
