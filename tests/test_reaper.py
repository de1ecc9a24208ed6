"""Jobs whose worker died are requeued, or failed after the maximum attempts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inpainting import services
from inpainting.models import Generation
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def orphan(api, attempts: int) -> str:
    """A job a worker claimed and then died on: running, started long ago."""
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    Generation.objects.filter(pk=generation_id).update(
        status="running", started_at=timezone.now() - timedelta(hours=1), attempts=attempts
    )
    return generation_id


def test_a_job_whose_worker_died_is_requeued_and_runs_once(api, paused_worker):
    generation_id = orphan(api, attempts=1)
    fresh = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    Generation.objects.filter(pk=fresh).update(
        status="running", started_at=timezone.now(), attempts=1
    )  # running normally: left alone
    assert services.generation_reap() == {"requeued": 1, "failed": 0, "resent": 0}
    assert services.generation_reap() == {"requeued": 0, "failed": 0, "resent": 0}
    paused_worker.resume()
    generation = wait_for_status(generation_id)
    assert generation.status == "succeeded" and generation.attempts == 2
    assert generation.images.count() == 1
    assert Generation.objects.get(pk=fresh).status == "running"


def test_a_job_that_keeps_killing_its_worker_fails_with_a_message(api, paused_worker):
    generation_id = orphan(api, attempts=3)
    assert services.generation_reap() == {"requeued": 0, "failed": 1, "resent": 0}
    generation = Generation.objects.get(pk=generation_id)
    assert generation.status == "failed"
    assert "The worker stopped during this job 3 times" in generation.error


def test_a_queued_job_whose_message_was_lost_is_sent_again(api, paused_worker):
    """A broker restarted without persistence loses queued messages; the job must not wait
    forever. A duplicate message is harmless: the job still runs exactly once."""
    from dreamlayer_site.celery import app

    lost = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    recent = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge("inference") >= 2  # both messages lost
    Generation.objects.filter(pk=lost).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert services.generation_reap() == {"requeued": 0, "failed": 0, "resent": 1}
    services._enqueue(Generation.objects.get(pk=lost))  # and a duplicate message too
    paused_worker.resume()
    generation = wait_for_status(lost)
    assert generation.status == "succeeded" and generation.attempts == 1
    assert generation.images.count() == 1
    assert Generation.objects.get(pk=recent).status == "queued"  # its message is not old yet
    Generation.objects.filter(pk=recent).update(status="cancelled")
