"""Jobs whose worker died are requeued, or failed after the maximum attempts."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from inpainting.models import Generation
from inpainting.services import queue, reaper, runs
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(autouse=True)
def broker_kept_its_data():
    """Redis did not restart (the marker is there), unless a test removes it."""
    cache.set(reaper.BROKER_MARKER, "set by the tests", timeout=None)


def orphan(api, attempts: int) -> str:
    """A job a worker claimed and then died on: running, its last heartbeat long ago."""
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    long_ago = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS + 1)
    Generation.objects.filter(pk=generation_id).update(
        status="running", started_at=long_ago, heartbeat_at=long_ago, attempts=attempts
    )
    return generation_id


def test_a_job_whose_worker_died_is_requeued_and_runs_once(api, paused_worker):
    generation_id = orphan(api, attempts=1)
    fresh = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    Generation.objects.filter(pk=fresh).update(
        status="running", started_at=timezone.now(), heartbeat_at=timezone.now(), attempts=1
    )  # running normally (a fresh heartbeat): left alone
    assert reaper.generation_reap() == {"requeued": 1, "failed": 0, "resent": 0}
    assert reaper.generation_reap() == {"requeued": 0, "failed": 0, "resent": 0}
    paused_worker.resume()
    generation = wait_for_status(generation_id)
    assert generation.status == "succeeded" and generation.attempts == 2
    assert generation.images.count() == 1
    assert Generation.objects.get(pk=fresh).status == "running"


def test_a_job_that_keeps_killing_its_worker_fails_with_a_message(api, paused_worker):
    generation_id = orphan(api, attempts=3)
    assert reaper.generation_reap() == {"requeued": 0, "failed": 1, "resent": 0}
    generation = Generation.objects.get(pk=generation_id)
    assert generation.status == "failed"
    assert "The worker stopped during this job 3 times" in generation.error


def test_a_queued_job_whose_message_was_lost_is_sent_again(api, paused_worker):
    """A broker restarted without persistence loses queued messages; the job must not wait
    forever. A duplicate message is harmless: every job still runs exactly once."""
    from dreamlayer_site.celery import app

    lost = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    recent = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge("inference") >= 2  # both messages lost
    Generation.objects.filter(pk=lost).update(enqueued_at=timezone.now() - timedelta(hours=1))
    assert reaper.generation_reap() == {"requeued": 0, "failed": 0, "resent": 1}
    queue.enqueue(Generation.objects.get(pk=lost))  # and a duplicate message too
    paused_worker.resume()
    generation = wait_for_status(lost)
    assert generation.status == "succeeded" and generation.attempts == 1
    assert generation.images.count() == 1
    # A message is a turn of its queue (fair share): the duplicate runs the other queued job,
    # whose own message was lost and is not old enough to be sent again. Each ran once.
    other = wait_for_status(recent)
    assert other.status == "succeeded" and other.attempts == 1


def test_when_redis_lost_its_data_every_queued_job_is_sent_again_at_once(api, paused_worker):
    """A Redis restart without persistence loses the queue; the reaper notices the missing
    marker and resends at once, not after REAP_QUEUED_AFTER_SECONDS."""
    from dreamlayer_site.celery import app

    ids = [
        post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
        for _ in range(2)
    ]
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge("inference") >= 2
    cache.delete(reaper.BROKER_MARKER)  # what a restart without persistence does
    assert reaper.generation_reap() == {"requeued": 0, "failed": 0, "resent": 2}
    assert reaper.generation_reap() == {"requeued": 0, "failed": 0, "resent": 0}
    paused_worker.resume()
    for generation_id in ids:
        generation = wait_for_status(generation_id)
        assert generation.status == "succeeded" and generation.attempts == 1


def test_a_redelivered_message_takes_over_a_job_whose_heartbeat_stopped(api, paused_worker):
    """What Celery does after a pool process is killed: the same message again, at once. It
    waits for the heartbeat to go stale, then runs the job; the dead attempt's token can no
    longer record anything."""
    from inpainting.tasks import run_generation

    generation_id = orphan(api, attempts=1)
    stale_token = "f" * 32
    Generation.objects.filter(pk=generation_id).update(attempt_token=stale_token)
    run_generation.apply_async(args=[generation_id], queue="inference")
    paused_worker.resume()
    generation = wait_for_status(generation_id)
    assert generation.status == "succeeded" and generation.attempts == 2
    assert generation.attempt_token != stale_token
    dead_attempt = Generation.objects.get(pk=generation_id)
    dead_attempt.attempt_token = stale_token
    assert not runs.generation_fail(generation=dead_attempt, message="late")
    assert Generation.objects.get(pk=generation_id).status == "succeeded"


def test_a_takeover_gives_back_the_turn_the_dead_worker_took(api, paused_worker):
    """What ``make chaos`` found on a slow machine: the killed worker was running the orphan
    on another queued job's message (a message is a turn of its queue), and that message
    waits in the broker for its visibility timeout. The orphan's own message takes it over
    and sends one more turn: the other job runs too, not after REAP_QUEUED_AFTER_SECONDS
    (600 s; no reaper runs here)."""
    from dreamlayer_site.celery import app
    from inpainting.tasks import run_generation

    generation_id = orphan(api, attempts=1)
    waiting = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge("inference") >= 2  # both messages gone
    run_generation.apply_async(args=[generation_id], queue="inference")  # the orphan's own
    paused_worker.resume()
    taken_over = wait_for_status(generation_id)
    assert taken_over.status == "succeeded" and taken_over.attempts == 2
    other = wait_for_status(waiting, timeout=60)
    assert other.status == "succeeded" and other.attempts == 1


def test_a_fresh_heartbeat_holds_the_job_against_a_duplicate_message(api, paused_worker):
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), wait="false").json()["id"]
    Generation.objects.filter(pk=generation_id).update(
        status="running", started_at=timezone.now(), heartbeat_at=timezone.now(), attempts=1
    )
    assert runs.generation_run(generation_id=generation_id) is runs.RunOutcome.HELD
    assert Generation.objects.get(pk=generation_id).attempts == 1
    Generation.objects.filter(pk=generation_id).update(status="cancelled")


def test_a_queued_job_past_its_max_queue_seconds_fails_without_a_worker_turn(api, paused_worker):
    """No worker takes a turn of its queue (all busy, or none running): the reaper fails a job
    that waited past its ``max_queue_seconds`` with the reason, and leaves the others."""
    late, patient = (
        post_img2img(api, image_png(), black_box_mask_png(), wait="false", **fields).json()["id"]
        for fields in ({"max_queue_seconds": "5"}, {})
    )
    Generation.objects.filter(pk__in=[late, patient]).update(
        created_at=timezone.now() - timedelta(seconds=10)
    )
    assert reaper.generation_reap() == {"requeued": 0, "failed": 1, "resent": 0}
    failed = Generation.objects.get(pk=late)
    assert failed.status == "failed" and "longer than its max_queue_seconds (5)" in failed.error
    assert Generation.objects.get(pk=patient).status == "queued"
    paused_worker.resume()
    assert wait_for_status(patient).status == "succeeded"
