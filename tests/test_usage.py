"""Quotas over time and usage (issue 82), through the API and the worker: a group's hourly
job quota refuses the next job with Retry-After and lets it in once the window has moved
on; GPU-seconds are the engine's measured inference time (a queued job counts its model's
usual until it has run); the usage page and GET /api/usage show the figures the test
computes from the rows; staff see everyone's in the admin and Prometheus each group's."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db.models import Sum
from django.template.defaultfilters import floatformat

from inpainting.models import Generation, UsageQuota
from inpainting.services.usage import usage_quota_check
from tests.helpers import (
    black_box_mask_png,
    image_png,
    post_img2img,
    studio_client,
    wait_for_status,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def job(api, **fields):
    """A classical job (the tests' default engine), answered 202 and waited for."""
    response = post_img2img(api, image_png(), black_box_mask_png(), wait="false", **fields)
    assert response.status_code == 202, response.content
    return wait_for_status(response.json()["id"], timeout=60)


@pytest.fixture
def students(user):
    group = Group.objects.create(name="students")
    user.groups.add(group)
    return group


def test_an_hourly_job_quota_refuses_the_next_job_with_retry_after_then_lets_it_in(
    api, user, students
):
    UsageQuota.objects.create(group=students, window="hour", jobs=2)
    first, second = job(api), job(api)
    refused = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert refused.status_code == 429
    assert refused.json()["message"].startswith(
        "You have used 2 jobs of your 2 an hour (the limit is the group students); the next "
        "job fits in "
    )
    wait = int(refused["Retry-After"])
    assert 3590 <= wait <= 3600
    assert Generation.objects.filter(owner=user).count() == 2  # nothing stored
    # An hour on, the first job has left the window: one more fits, and then no more.
    Generation.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(hours=1))
    assert job(api).status == "succeeded"
    assert post_img2img(api, image_png(), black_box_mask_png()).status_code == 429
    # The user's own quota of the window decides over their group's.
    UsageQuota.objects.create(user=user, window="hour", jobs=10)
    assert job(api).status == "succeeded"
    assert second.pk


def test_gpu_seconds_are_the_measured_inference_time_and_a_quota_of_them_holds(
    api, user, paused_worker
):
    paused_worker.resume()
    ran = job(api)
    assert ran.inference_seconds > 0
    usage = api.get("/api/usage").json()
    assert usage["usage"]["hour"] == {"jobs": 1, "gpu_seconds": round(ran.inference_seconds, 3)}
    # Queued, a job counts its engine's usual time (the median of its finished jobs).
    paused_worker.pause()
    response = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    queued = api.get("/api/usage").json()["usage"]["hour"]
    assert queued["jobs"] == 2
    assert queued["gpu_seconds"] == pytest.approx(2 * ran.inference_seconds, abs=0.002)
    paused_worker.resume()
    done = wait_for_status(response.json()["id"], timeout=60)
    corrected = api.get("/api/usage").json()["usage"]["day"]["gpu_seconds"]
    assert corrected == pytest.approx(ran.inference_seconds + done.inference_seconds, abs=0.002)
    # A day's quota of GPU-seconds already used up refuses the next job.
    UsageQuota.objects.create(user=user, window="day", gpu_seconds=0)
    refused = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert refused.status_code == 429 and "GPU-seconds of your 0 a day" in refused.json()["message"]
    assert refused["Retry-After"]


def test_the_usage_page_and_api_show_what_the_rows_say(api, user, students):
    UsageQuota.objects.create(group=students, window="day", jobs=50, gpu_seconds=3600)
    for _ in range(3):
        job(api)
    mine = Generation.objects.filter(owner=user)
    expected_gpu = round(mine.aggregate(s=Sum("inference_seconds"))["s"], 3)
    answer = api.get("/api/usage").json()
    assert answer["usage"]["month"] == {"jobs": 3, "gpu_seconds": expected_gpu}
    assert answer["limits"]["day"] == {
        "jobs": 50,
        "gpu_seconds": 3600,
        "source": "the group students",
    }
    assert answer["limits"]["hour"] == {"jobs": None, "gpu_seconds": None, "source": None}
    assert answer["stored_bytes"] > 0 and answer["username"] == "alice"
    page = studio_client(user).get("/usage/").content.decode()
    row = re.search(r'<tr data-period="day">(.*?)</tr>', page, re.S).group(1)
    assert "<td data-jobs>3</td>" in row
    # One decimal, rounded half up as the page's filter rounds (0.25 shows as 0.3).
    assert f"<td data-gpu-seconds>{floatformat(expected_gpu, 1)}</td>" in row
    assert "50 jobs, 3600 GPU-seconds (the group students)" in row


def test_staff_are_held_only_by_their_own_quota_and_see_everyones_usage(
    api, staff_api, staff_user, students
):
    UsageQuota.objects.create(group=students, window="hour", jobs=0)
    staff_user.groups.add(students)
    refused = post_img2img(api, image_png(), black_box_mask_png())
    assert refused.status_code == 403  # a limit of 0: no job will ever fit
    assert "Your limit an hour is 0 (the group students)" in refused.json()["message"]
    assert job(staff_api).status == "succeeded"  # a member, but staff
    client = studio_client(staff_user)
    users = client.get("/admin/inpainting/userusage/?o=2").content.decode()
    assert "alice" in users and "staff" in users
    groups = client.get("/admin/inpainting/groupusage/").content.decode()
    assert "students" in groups
    metrics = client.get("/metrics").content.decode()
    assert 'dreamlayer_group_generations{group="students"} 1.0' in metrics
    UsageQuota.objects.create(user=staff_user, window="hour", jobs=1)
    assert post_img2img(staff_api, image_png(), black_box_mask_png()).status_code == 429


def test_the_quota_check_costs_one_query_without_quotas_and_three_with(
    user, students, django_assert_num_queries
):
    """The check's budget (ADR 13): a server without quotas pays one query a check; with an
    hour's and a day's quota, one for the quotas, one for both windows, one for the jobs not
    yet run (none here: no estimate to read)."""
    with django_assert_num_queries(1):
        usage_quota_check(user)
    UsageQuota.objects.create(group=students, window="hour", jobs=5)
    UsageQuota.objects.create(user=user, window="day", gpu_seconds=100)
    with django_assert_num_queries(3):
        usage_quota_check(user)
