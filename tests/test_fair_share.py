"""Fair share between users (issue 58), through the session's real worker (one job at a time,
the classical engine unless a test asks for the tiny diffusers model): a user's long batch does
not hold back another user's job, three users' jobs interleave, a person in the studio goes
ahead of their own scripts, a job past its ``max_queue_seconds`` fails with the reason, the
position and ETA users are shown are the order the worker then takes, a model batch never takes
another user's turn, a deleted job's message still takes its queue's turn, and staff move
(front, back) and cancel queued jobs and set a user's or a key's lane in the admin."""

from __future__ import annotations

import time

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.forms import MultiWidget
from django.test import Client
from rest_framework.test import APIClient

from accounts.services import api_key_create
from inpainting.models import Generation
from tests.helpers import (
    black_box_mask_png,
    image_png,
    post_img2img,
    studio_client,
    wait_for_status,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("jobs_settled")]


def _keyed(name: str) -> APIClient:
    user = get_user_model().objects.create_user(username=name, password=f"pw-{name}-123")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key_create(user=user, name="script")[1])
    client.user = user
    return client


def _queue(client, count: int, **fields) -> list[str]:
    ids = []
    for _ in range(count):
        response = post_img2img(client, image_png(), black_box_mask_png(), wait="false", **fields)
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    return ids


def _started_order(ids: list[str]) -> list[str]:
    """The owners' names in the order the worker started their jobs (all of them finished)."""
    jobs = [wait_for_status(i, timeout=120) for i in ids]
    assert all(job.status == "succeeded" for job in jobs), [job.error for job in jobs]
    return [job.owner.username for job in sorted(jobs, key=lambda j: j.started_at)]


def _admin(staff_user) -> Client:
    """A browser logged in to the admin as a superuser (changing needs the permissions)."""
    staff_user.is_superuser = True
    staff_user.save()
    admin = Client()
    admin.force_login(staff_user)
    return admin


def _posted_back(page) -> dict:
    """What a browser posts back from an admin change page's form left as it is."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, MultiWidget):  # a date and a time
            for index, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{index}"] = "" if part is None else str(part)
        elif value is True:
            data[name] = "on"
        elif value not in (None, False):
            data[name] = value
    return data


def test_one_users_batch_does_not_hold_back_another_users_job(paused_worker):
    alice, bob = _keyed("alice"), _keyed("bob")
    batch = _queue(alice, 8)
    single = _queue(bob, 1)
    paused_worker.resume()
    order = _started_order(batch + single)
    # Both users start at no use: alice's oldest job first, then bob's (the least use).
    assert order.index("bob") == 1, order


def test_three_users_jobs_interleave(paused_worker):
    clients = [_keyed(name) for name in ("ann", "ben", "cat")]
    ids = []
    for client in clients:  # each user's whole batch in turn: ann's first, cat's last
        ids += _queue(client, 3)
    paused_worker.resume()
    assert _started_order(ids) == ["ann", "ben", "cat"] * 3


def test_a_studio_job_overtakes_the_same_users_queued_api_batch(paused_worker):
    alice = _keyed("alice")
    batch = _queue(alice, 3)
    interactive = _queue(studio_client(alice.user), 1)  # the studio page's job
    assert (
        Generation.objects.get(pk=interactive[0]).priority
        > Generation.objects.get(pk=batch[0]).priority
    )
    paused_worker.resume()
    jobs = [wait_for_status(i, timeout=120) for i in batch + interactive]
    first = min(jobs, key=lambda job: job.started_at)
    assert str(first.pk) == interactive[0]


def test_a_job_past_its_max_queue_seconds_fails_with_the_reason(paused_worker):
    alice = _keyed("alice")
    (late,) = _queue(alice, 1, max_queue_seconds="1")
    (patient,) = _queue(alice, 1)
    time.sleep(1.5)
    paused_worker.resume()
    failed = wait_for_status(late, timeout=60)
    assert failed.status == "failed" and failed.started_at is None
    assert "longer than its max_queue_seconds (1)" in failed.error
    assert wait_for_status(patient, timeout=60).status == "succeeded"


def test_the_position_and_eta_shown_are_the_order_the_worker_takes(paused_worker):
    alice, bob = _keyed("alice"), _keyed("bob")
    paused_worker.resume()
    wait_for_status(_queue(alice, 1)[0])  # a finished job: the ETA's pace
    paused_worker.pause()
    ids = _queue(alice, 3) + _queue(bob, 2)
    shown = {}
    for job_id in ids:
        detail = alice.get(f"/api/generations/{job_id}/")
        if detail.status_code == 404:
            detail = bob.get(f"/api/generations/{job_id}/")
        body = detail.json()
        shown[job_id] = (body["queue_position"], body["eta_seconds"])
    positions = sorted(position for position, _ in shown.values())
    assert positions == [1, 2, 3, 4, 5]
    by_position = sorted(ids, key=lambda i: shown[i][0])
    etas = [shown[i][1] for i in by_position]
    assert all(eta is not None for eta in etas) and etas == sorted(etas)
    paused_worker.resume()
    jobs = [wait_for_status(i, timeout=120) for i in ids]
    started = [str(job.pk) for job in sorted(jobs, key=lambda j: j.started_at)]
    for job_id in ids:  # within one place of what was shown
        assert abs(started.index(job_id) + 1 - shown[job_id][0]) <= 1, (shown, started)


def test_staff_see_the_queue_by_user_and_move_a_job_to_the_front(paused_worker, staff_user):
    alice, bob = _keyed("alice"), _keyed("bob")
    first = _queue(alice, 3)
    (last,) = _queue(bob, 1)
    admin = _admin(staff_user)
    page = admin.get("/admin/inpainting/generation/queue/").content.decode()
    places = [page.index(f'data-generation-id="{i}"') for i in (*first, last)]
    # alice's oldest, then bob's (the least use), then alice's others
    assert places[0] < places[3] < places[1] < places[2]
    moved = admin.post(
        "/admin/inpainting/generation/",
        {"action": "move_to_front", "_selected_action": [first[2]]},
        follow=True,
    )
    assert "1 queued job(s) moved to the front." in moved.content.decode()
    page = admin.get("/admin/inpainting/generation/queue/").content.decode()
    assert page.index(f'data-generation-id="{first[2]}"') < page.index(
        f'data-generation-id="{first[0]}"'
    )
    paused_worker.resume()
    jobs = [wait_for_status(i, timeout=120) for i in (*first, last)]
    assert str(min(jobs, key=lambda job: job.started_at).pk) == first[2]


def test_staff_move_a_job_to_the_back_and_cancel_one(paused_worker, staff_user):
    alice, bob = _keyed("alice"), _keyed("bob")
    first = _queue(alice, 3)
    (bobs,) = _queue(bob, 1)
    admin = _admin(staff_user)
    moved = admin.post(
        "/admin/inpainting/generation/",
        {"action": "move_to_back", "_selected_action": [first[0]]},
        follow=True,
    )
    assert "1 queued job(s) moved to the back." in moved.content.decode()
    cancelled = admin.post(
        "/admin/inpainting/generation/",
        {"action": "cancel_selected", "_selected_action": [bobs]},
        follow=True,
    )
    assert "1 generation(s) cancelled." in cancelled.content.decode()
    assert Generation.objects.get(pk=bobs).status == "cancelled"
    page = admin.get("/admin/inpainting/generation/queue/").content.decode()
    assert f'data-generation-id="{bobs}"' not in page
    places = [page.index(f'data-generation-id="{i}"') for i in first]
    # alice's oldest, first before, is now behind her two others
    assert places[1] < places[2] < places[0]
    paused_worker.resume()
    jobs = [wait_for_status(i, timeout=120) for i in first]
    assert [str(job.pk) for job in sorted(jobs, key=lambda job: job.started_at)] == [
        first[1],
        first[2],
        first[0],
    ]


def test_staff_set_a_users_and_a_keys_lane_in_the_admin(staff_user):
    alice = _keyed("alice")
    admin = _admin(staff_user)
    url = f"/admin/accounts/user/{alice.user.pk}/change/"
    page = admin.get(url)
    assert 'name="job_priority"' in page.content.decode()
    changed = admin.post(url, {**_posted_back(page), "job_priority": "7"}, follow=True)
    assert "was changed successfully" in changed.content.decode()
    user = get_user_model().objects.get(pk=alice.user.pk)  # the rest of the form as it was
    assert (user.username, user.is_active, user.is_staff) == ("alice", True, False)
    assert user.date_joined == alice.user.date_joined.replace(microsecond=0)  # as the page shows
    assert user.password == alice.user.password
    (users,) = _queue(alice, 1)
    assert Generation.objects.get(pk=users).priority == 7
    key = alice.user.api_keys.get()
    # The admin quotes a key's id in its links ("dl_3A" would read as "dl:"): as followed.
    url = f"/admin/accounts/apikey/{quote(key.pk)}/change/"
    page = admin.get(url)
    changed = admin.post(url, {**_posted_back(page), "job_priority": "-2"}, follow=True)
    assert "was changed successfully" in changed.content.decode()
    (keys,) = _queue(alice, 1)
    assert Generation.objects.get(pk=keys).priority == -2
    Generation.objects.filter(owner=alice.user).update(status=Generation.Status.CANCELLED)


def test_a_users_and_a_keys_own_lane_are_what_their_jobs_get(settings):
    """Staff set a user's lane, or a key's (the admin's Users and API keys): a key's lane
    wins over its user's, which wins over the client's default (studio 10, API 0)."""
    alice = _keyed("alice")
    (default,) = _queue(alice, 1)
    assert Generation.objects.get(pk=default).priority == Generation.PRIORITY_BATCH
    alice.user.job_priority = 5
    alice.user.save()
    (users,) = _queue(alice, 1)
    assert Generation.objects.get(pk=users).priority == 5
    key = alice.user.api_keys.get()
    key.job_priority = -3
    key.save()
    (keys,) = _queue(alice, 1)
    assert Generation.objects.get(pk=keys).priority == -3
    Generation.objects.filter(owner=alice.user).update(status=Generation.Status.CANCELLED)


def test_a_batch_never_takes_another_users_turn(paused_worker):
    """Diffusers jobs run in batches (BATCH_MAX_JOBS, 4), taken in the fair-share order only:
    alice's 6 compatible jobs, then bob's one with other steps. Bob's job is next after
    alice's first and does not fit her batch, so her first runs without the others, then bob's,
    then hers in batches: his job starts before her third."""
    alice, bob = _keyed("alice"), _keyed("bob")
    diffusers = {"engine": "diffusers", "prompt": "a red rose", "denoising_strength": "1.0"}
    batch = _queue(alice, 6, steps="4", **diffusers)
    (single,) = _queue(bob, 1, steps="3", **diffusers)
    paused_worker.resume()
    jobs = [wait_for_status(i, timeout=180) for i in (*batch, single)]
    assert all(job.status == "succeeded" for job in jobs), [job.error for job in jobs]
    alices = sorted(job.started_at for job in jobs[:6])
    assert jobs[6].started_at < alices[2], _started_order([*batch, single])
    assert max(job.metadata.get("batched_jobs") or 1 for job in jobs[:6]) > 1  # still batched


def test_a_deleted_jobs_message_still_takes_its_queues_turn(paused_worker):
    """A message is a turn of its queue, not its job: alice's studio job (the higher lane) runs
    on the message of her script's job, queued before it. She deletes it while it runs, so its
    own message finds no job; that message still takes its queue's turn and runs the script's
    job at once (no reaper runs in the tests, and REAP_QUEUED_AFTER_SECONDS is 600: without the
    turn the job would wait for the reaper's resend, past this test's 60 s).

    The delete commits the cancel first and removes the row in a second transaction, so the
    message may find its job gone (the worker logs so) or still there, cancelled, on a slow
    machine: either way it takes its queue's turn, which is what is checked."""
    script = _keyed("alice")
    (waiting,) = _queue(script, 1)
    studio = studio_client(script.user)
    (deleted,) = _queue(
        studio, 1, engine="diffusers", prompt="a cat", steps="150", denoising_strength="1.0"
    )
    paused_worker.resume()
    wait_for_status(deleted, statuses=("running",))
    assert Generation.objects.get(pk=waiting).status == "queued"
    assert studio.delete(f"/api/generations/{deleted}/").status_code == 204
    job = wait_for_status(waiting, timeout=60)
    assert job.status == "succeeded" and job.attempts == 1, job.error
    assert not Generation.objects.filter(pk=deleted).exists()
