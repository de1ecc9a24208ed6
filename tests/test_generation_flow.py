"""The whole path through a real Celery worker process and Redis (not eager mode)."""

import io
import time

import numpy as np
import pytest
import redis
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image
from rest_framework.test import APIClient

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import GeneratedImage, Generation
from inpainting.tasks import run_generation
from tests.helpers import H, W, black_box_mask_png, image_png, post_img2img, wait_for_status
from tests.images import box_mask, decode, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_img2img_with_an_api_key_returns_the_result_with_exact_preservation(user, api_key):
    client = APIClient()
    response = post_img2img(
        client,
        image_png(),
        black_box_mask_png(),
        prompt="remove it",
        headers={"Authorization": f"Api-Key {api_key}"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    assert len(body["images"]) == 1
    assert body["images"][0] == f"http://testserver/api/generations/{body['id']}/images/0.png"
    meta = body["metadata"]
    assert meta["engine"] == "classical" and meta["model"] == "hybrid-patchmatch-poisson"
    assert (meta["width"], meta["height"]) == (W, H)
    # The classical engine followed no prompt (the warnings say so) and did no sampling; the
    # answer still names every setting, as the request gave it or defaulted it.
    assert meta["prompt"] == "remove it" and meta["warnings"][0]["field"] == "prompt"
    assert meta["num_inference_steps"] == 30 and meta["mask_mode"] == "black_inpaints"
    assert meta["denoising_strength"] == 1.0
    assert isinstance(meta["seed"], int) and meta["prompt_ignored"] is True
    assert meta["timings"]["inference"] > 0 and meta["timings"]["queue"] >= 0

    image = client.get(
        body["images"][0].removeprefix("http://testserver"), headers={"X-API-Key": api_key}
    )
    assert image.status_code == 200
    assert image["Content-Type"] == "image/png"
    assert image["X-Content-Type-Options"] == "nosniff"
    out = decode(b"".join(image.streaming_content))
    original = decode(image_png())
    mask = effective_mask(Image.open(io.BytesIO(black_box_mask_png())), (W, H), MaskOptions())
    assert out.shape == original.shape
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.5

    generation = Generation.objects.get(pk=body["id"])
    assert generation.status == "succeeded" and generation.attempts == 1
    assert generation.api_key.user == user and generation.client == "api"
    assert generation.seed == meta["seed"]


def test_params_json_aliases_seed_and_samples(api):
    response = post_img2img(
        api,
        image_png(),
        black_box_mask_png(),
        params='{"batch_size": 2, "seed": 1234, "steps": 12, "mask_blur": 0}',
    )
    assert response.status_code == 200, response.content
    meta = response.json()["metadata"]
    assert meta["seed"] == 1234 and meta["seeds"] == [1234, 1235]
    assert meta["mask_blur"] == 0
    # Read as the request's steps (the classical engine that ran does not use them).
    stored = Generation.objects.get(pk=response.json()["id"]).params
    assert stored["num_inference_steps"] == 12
    assert len(response.json()["images"]) == 2


def test_mask_with_matching_aspect_is_scaled(api):
    small = png_bytes(box_mask(W // 2, H // 2, (16, 10, 31, 21), inpaint_white=False))
    response = post_img2img(api, image_png(), small)
    assert response.status_code == 200, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    assert (generation.mask.width, generation.mask.height) == (W // 2, H // 2)


def test_wait_false_answers_202_then_the_job_finishes(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "processing"
    assert body["fetch_result"] == f"http://testserver/api/generations/{body['id']}/"
    assert body["websocket"] == f"ws://testserver/ws/generations/{body['id']}/"
    wait_for_status(body["id"])
    detail = api.get(f"/api/generations/{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["progress"]["percent"] == 100.0
    assert len(detail["images"]) == 1
    listing = api.get("/api/generations/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == body["id"]


def test_diffusers_end_to_end(api):
    response = post_img2img(
        api,
        image_png(),
        black_box_mask_png(),
        engine="diffusers",
        prompt="a red rose",
        steps=5,
        denoising_strength=1.0,
        seed=3,
    )
    assert response.status_code == 200, response.content
    meta = response.json()["metadata"]
    assert meta["engine"] == "diffusers" and meta["seed"] == 3
    assert meta["model"].endswith("tiny-sd-inpaint")
    generation = Generation.objects.get(pk=response.json()["id"])
    assert generation.step == generation.total_steps == 5


def test_idempotency_key_returns_the_same_generation(api):
    headers = {"Idempotency-Key": "order-42"}
    first = post_img2img(api, image_png(), black_box_mask_png(), headers=headers)
    second = post_img2img(api, image_png(), black_box_mask_png(), headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Generation.objects.count() == 1


def test_a_duplicate_task_delivery_produces_one_result(api, paused_worker):
    response = post_img2img(api, image_png(), black_box_mask_png(), wait="false", samples=2)
    generation_id = response.json()["id"]
    run_generation.apply_async(args=[generation_id], queue="inference")  # redelivered copy
    paused_worker.resume()
    generation = wait_for_status(generation_id)
    broker = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + 20
    while broker.llen("inference") or broker.llen("inference:5") or broker.hlen("unacked"):
        assert time.monotonic() < deadline, "the second message was never consumed"
        time.sleep(0.05)
    time.sleep(0.5)
    assert f"generation {generation_id} is succeeded; not claimed here" in (
        paused_worker.log_tail()
    )
    generation.refresh_from_db()
    assert generation.status == "succeeded" and generation.attempts == 1
    assert GeneratedImage.objects.filter(generation=generation).count() == 2
    assert sorted(GeneratedImage.objects.values_list("index", flat=True)) == [0, 1]


def test_queued_diffusers_jobs_run_as_one_batch(api, paused_worker):
    """Three compatible diffusers jobs waiting in the queue: the first one the worker takes
    claims the other two into its model batch; each gets its own result, and the other
    messages run what is left. A classical job is never batched."""
    ids = [
        post_img2img(
            api,
            image_png(),
            black_box_mask_png(),
            wait="false",
            engine="diffusers",
            prompt=prompt,
            steps=4,
            denoising_strength=1.0,
            seed=seed,
        ).json()["id"]
        for prompt, seed in (("a red rose", 1), ("a cat", 2), ("a tree", 3))
    ]
    classical = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    paused_worker.resume()
    jobs = [wait_for_status(generation_id) for generation_id in [*ids, classical]]
    assert [job.status for job in jobs] == ["succeeded"] * 4
    assert [job.metadata.get("batched_jobs") for job in jobs] == [3, 3, 3, None]
    assert [job.seed for job in jobs[:3]] == [1, 2, 3]
    assert all(job.attempts == 1 and job.step == job.total_steps == 4 for job in jobs[:3])
    images = [decode(job.images.get().file.read()) for job in jobs[:3]]
    assert np.abs(np.asarray(images[0], int) - np.asarray(images[1], int)).max() > 10
    # Four messages, four jobs, two runs (the batch and the classical job): two messages are
    # turns with nothing left in their queue (fair share: a message is a turn, not its job).
    idle = [f"generation {job_id} is succeeded; not claimed here" for job_id in [*ids, classical]]
    deadline = time.monotonic() + 20
    while sum(line in paused_worker.log.read_text() for line in idle) < 2:
        assert time.monotonic() < deadline, paused_worker.log_tail()
        time.sleep(0.1)
    assert jobs[3].attempts == 1


def test_cancel_a_queued_generation(api, paused_worker):
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    response = api.post(f"/api/generations/{generation_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"/api/generations/{generation_id}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]
    paused_worker.resume()
    # The worker takes the job's message and leaves it alone: wait for that, not for a time.
    consumed = f"generation {generation_id} is cancelled; not claimed here"
    deadline = time.monotonic() + 30
    while consumed not in paused_worker.log.read_text():
        assert time.monotonic() < deadline, paused_worker.log_tail()
        time.sleep(0.05)
    generation = Generation.objects.get(pk=generation_id)
    assert generation.status == "cancelled" and generation.attempts == 0
    assert not generation.images.exists()


def test_rerun_and_delete_removes_every_file(api):
    first = post_img2img(api, image_png(), black_box_mask_png(), seed=5).json()
    rerun = api.post(f"/api/generations/{first['id']}/rerun/")
    assert rerun.status_code == 201
    second = wait_for_status(rerun.json()["id"])
    assert second.seed == 5 and second.source_id == Generation.objects.get(pk=first["id"]).source_id
    files = [second.source.file.name, second.mask.file.name, second.mask.thumbnail.name]
    files += [image.file.name for g in Generation.objects.all() for image in g.images.all()]
    assert all(default_storage.exists(name) for name in files)
    assert api.delete(f"/api/generations/{first['id']}/").status_code == 204
    assert default_storage.exists(second.source.file.name)  # still used by the rerun
    assert api.delete(f"/api/generations/{second.pk}/").status_code == 204
    assert not any(default_storage.exists(name) for name in files)
    assert Generation.objects.count() == 0


def test_a_failing_job_is_recorded_with_its_message(api, paused_worker):
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    # Only the worker can find this out (e.g. an engine that vanished from the configuration).
    Generation.objects.filter(pk=generation_id).update(engine="vanished")
    paused_worker.resume()
    generation = wait_for_status(generation_id)
    assert generation.status == "failed"
    assert "Unknown engine 'vanished'" in generation.error
    detail = api.get(f"/api/generations/{generation_id}/").json()
    assert detail["status"] == "failed" and "Unknown engine" in detail["error"]
    assert detail["images"] == []


def test_outpaint_without_a_mask(api):
    response = post_img2img(
        api, image_png(), None, params='{"outpaint": {"left": 32, "bottom": 16}}'
    )
    assert response.status_code == 200, response.content
    meta = response.json()["metadata"]
    assert (meta["width"], meta["height"]) == (W + 32, H + 16)
    assert (meta["input_width"], meta["input_height"]) == (W, H)
    assert meta["outpaint"] == {"left": 32, "bottom": 16, "right": 0, "top": 0}
    image = api.get(response.json()["images"][0].removeprefix("http://testserver"))
    out = decode(b"".join(image.streaming_content))
    assert out.shape == (H + 16, W + 32, 3)
    # Untouched beyond the seam's feather (mask_blur = 4 px into the original).
    assert (out[: H - 4, 32 + 4 :] == decode(image_png())[:-4, 4:]).all()


def test_only_masked_through_the_api(api):
    big = image_png(1024, 768)
    mask = png_bytes(box_mask(1024, 768, (500, 400, 549, 449), inpaint_white=False))
    response = post_img2img(
        api,
        big,
        mask,
        engine="diffusers",
        prompt="a rose",
        steps=2,
        inpaint_area="masked",
        padding=16,
    )
    assert response.status_code == 200, response.content
    meta = response.json()["metadata"]
    assert meta["inpaint_area"] == "masked" and meta["padding"] == 16
    x0, y0, x1, y1 = meta["crop"]
    assert (x1 - x0) * (y1 - y0) < 0.05 * 1024 * 768


def test_output_png_carries_its_parameters(api):
    import json

    body = post_img2img(api, image_png(), black_box_mask_png(), prompt="bench", seed=77).json()
    image = api.get(body["images"][0].removeprefix("http://testserver"))
    png = Image.open(io.BytesIO(b"".join(image.streaming_content)))
    parameters = json.loads(png.text["dreamlayer"])
    assert parameters["prompt"] == "bench" and parameters["seed"] == 77
    assert parameters["engine"] == "classical" and parameters["generation"] == body["id"]


def test_sixteen_bit_grayscale_input(api):
    gray = np.asarray(Image.open(io.BytesIO(image_png())).convert("L"), np.uint16) * 257
    response = post_img2img(api, png_bytes(Image.fromarray(gray)), black_box_mask_png())
    assert response.status_code == 200, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    stored = np.asarray(Image.open(generation.source.file.open("rb")).convert("L")).astype(int)
    expected = np.asarray(Image.open(io.BytesIO(image_png())).convert("L")).astype(int)
    assert np.abs(stored - expected).max() <= 1


def test_a_rerun_of_a_random_seed_job_gives_its_image_again(api):
    """No seed asked for: the job draws one; its re-run runs with that seed, and the classical
    fill honours it (the same bytes)."""
    photo = png_bytes(
        Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 96, 3), np.uint8))
    )
    first = post_img2img(api, photo, black_box_mask_png()).json()
    assert first["status"] == "success"
    rerun = api.post(f"/api/generations/{first['id']}/rerun/")
    second = wait_for_status(rerun.json()["id"])
    original = Generation.objects.get(pk=first["id"])
    assert second.seed == original.seed
    with original.images.get().file.open("rb") as a, second.images.get().file.open("rb") as b:
        assert np.array_equal(decode(a.read()), decode(b.read()))
