"""Progress websockets through the real ASGI stack, the Redis channel layer and the worker."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from rest_framework.test import APIClient

from dreamlayer_site.asgi import application
from inpainting.models import Generation
from inpainting.services.generations import generation_move
from inpainting.services.reaper import generation_reap
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def key_headers(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Api-Key {key}".encode()), (b"host", b"testserver")]


async def submit(client, **fields) -> str:
    response = await sync_to_async(post_img2img)(
        client, image_png(), black_box_mask_png(), wait="false", **fields
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


async def connect(path: str, headers) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    return communicator


async def receive_until(communicator, kinds, timeout=60):
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if message["type"] in kinds:
            return messages


async def test_one_progress_message_per_step_then_completed(api, api_key, paused_worker):
    generation_id = await submit(
        api, engine="diffusers", prompt="a rose", steps=8, denoising_strength=1.0, seed=9
    )
    ws = await connect(f"/ws/generations/{generation_id}/", key_headers(api_key))
    snapshot = await ws.receive_json_from(timeout=10)
    assert snapshot["type"] == "status" and snapshot["status"] == "queued"
    assert snapshot["queue_position"] == 1 and snapshot["id"] == generation_id
    await sync_to_async(paused_worker.resume)()
    messages = await receive_until(ws, {"completed", "failed"})
    progress = [m for m in messages if m["type"] == "progress"]
    assert [m["step"] for m in progress] == list(range(1, 9))
    assert all(m["total"] == 8 for m in progress)
    assert [m["percent"] for m in progress] == [12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0]
    assert progress[-1]["eta_seconds"] == 0.0
    # A live preview every INPAINT_PREVIEW_EVERY (5) steps, never on the last one.
    previews = [m["step"] for m in progress if "preview" in m]
    assert previews == [5]
    assert progress[4]["preview"].startswith("data:image/jpeg;base64,/9j/")
    assert any(m["type"] == "status" and m["status"] == "running" for m in messages)
    completed = messages[-1]
    assert completed["type"] == "completed"
    assert completed["images"] == [
        f"http://testserver/api/generations/{generation_id}/images/0.png"
    ]
    assert completed["metadata"]["seed"] == 9 and completed["metadata"]["engine"] == "diffusers"
    await ws.disconnect()


async def test_a_queued_jobs_place_is_sent_again_as_the_jobs_ahead_start(
    api, api_key, paused_worker
):
    """The third job in line is told its new place each time a job ahead of it starts (not
    only when it starts itself): 3rd, then 2nd, then 1st, then running."""
    await sync_to_async(paused_worker.resume)()
    await sync_to_async(wait_for_status)(await submit(api))  # a finished job: the ETA's pace
    await sync_to_async(paused_worker.pause)()
    ids = [await submit(api) for _ in range(3)]
    ws = await connect(f"/ws/generations/{ids[2]}/", key_headers(api_key))
    snapshot = await ws.receive_json_from(timeout=10)
    assert (snapshot["status"], snapshot["queue_position"]) == ("queued", 3)
    await sync_to_async(paused_worker.resume)()
    messages = await receive_until(ws, {"completed", "failed"})
    await ws.disconnect()
    assert messages[-1]["type"] == "completed", messages
    statuses = [m for m in messages if m["type"] == "status"]
    places = [(m["status"], m["queue_position"]) for m in statuses]
    assert places[:3] == [("queued", 2), ("queued", 1), ("running", None)], places
    # Sent before the first job ahead ran (the same pace): one job's cost less than at 3rd.
    assert 0 < statuses[0]["eta_seconds"] < snapshot["eta_seconds"]
    assert statuses[1]["eta_seconds"] > 0


async def test_the_job_behind_a_cancelled_queued_one_is_told_its_new_place(
    api, api_key, paused_worker
):
    first, second = [await submit(api) for _ in range(2)]
    ws = await connect(f"/ws/generations/{second}/", key_headers(api_key))
    snapshot = await ws.receive_json_from(timeout=10)
    assert (snapshot["status"], snapshot["queue_position"]) == ("queued", 2)
    response = await sync_to_async(api.post)(f"/api/generations/{first}/cancel/")
    assert response.json()["status"] == "cancelled"
    message = await ws.receive_json_from(timeout=10)
    assert (message["type"], message["status"], message["queue_position"]) == (
        "status",
        "queued",
        1,
    )
    await sync_to_async(api.post)(f"/api/generations/{second}/cancel/")
    await ws.disconnect()


async def test_the_job_behind_an_expired_one_is_told_its_new_place(api, api_key, paused_worker):
    """The reaper fails a job past its ``max_queue_seconds`` when no worker takes its queue's
    turn; the job behind it hears it is next."""
    late = await submit(api, max_queue_seconds="5")
    behind = await submit(api)
    ws = await connect(f"/ws/generations/{behind}/", key_headers(api_key))
    assert (await ws.receive_json_from(timeout=10))["queue_position"] == 2
    await Generation.objects.filter(pk=late).aupdate(
        created_at=timezone.now() - timedelta(seconds=10)
    )
    assert (await sync_to_async(generation_reap)())["failed"] == 1
    message = await ws.receive_json_from(timeout=10)
    assert (message["status"], message["queue_position"]) == ("queued", 1)
    await sync_to_async(api.post)(f"/api/generations/{behind}/cancel/")
    await ws.disconnect()


async def test_the_jobs_of_a_queue_are_told_their_place_when_staff_move_one(
    api, api_key, paused_worker
):
    first, second = [await submit(api) for _ in range(2)]
    ws = await connect(f"/ws/generations/{first}/", key_headers(api_key))
    assert (await ws.receive_json_from(timeout=10))["queue_position"] == 1
    moved = await Generation.objects.aget(pk=second)
    assert await sync_to_async(generation_move)(generation=moved, front=True) is not None
    message = await ws.receive_json_from(timeout=10)
    assert (message["status"], message["queue_position"]) == ("queued", 2)
    for job in (first, second):
        await sync_to_async(api.post)(f"/api/generations/{job}/cancel/")
    await ws.disconnect()


async def test_cancel_while_running_stops_within_a_step(api, api_key):
    generation_id = await submit(
        api, engine="diffusers", prompt="a rose", steps=150, denoising_strength=1.0
    )
    ws = await connect(f"/ws/generations/{generation_id}/", key_headers(api_key))
    messages = await receive_until(ws, {"progress"})
    response = await sync_to_async(api.post)(f"/api/generations/{generation_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    step_at_cancel = response.json()["progress"]["step"]
    messages += await receive_until(ws, {"cancelled"})
    await asyncio.sleep(1.0)  # time for any late step to show up
    while not ws.output_queue.empty():
        messages.append(await ws.receive_json_from())
    await ws.disconnect()
    steps = [m["step"] for m in messages if m["type"] == "progress"]
    # The worker checks after every step: at most the step in flight finishes.
    assert 1 <= step_at_cancel < 150
    assert max(steps) <= step_at_cancel + 1, (step_at_cancel, steps)
    generation = await Generation.objects.aget(pk=generation_id)
    assert generation.status == "cancelled"
    assert not await generation.images.aexists()


async def test_session_cookie_and_the_user_stream(user, client, api):
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"host", b"localhost"), (b"origin", b"http://localhost")]
    stream = await connect("/ws/generations/", headers)
    generation_id = await submit(api)
    statuses = []
    while "succeeded" not in statuses:
        message = await stream.receive_json_from(timeout=30)
        if message["id"] == generation_id:
            statuses.append(message["status"])
    assert statuses[0] == "queued" and "running" in statuses
    one = await connect(f"/ws/generations/{generation_id}/", headers)
    snapshot = await one.receive_json_from(timeout=10)
    assert snapshot["status"] == "succeeded" and len(snapshot["images"]) == 1
    await stream.disconnect()
    await one.disconnect()


async def test_refusals(api, api_key, other_user):
    from accounts.services import api_key_create

    generation_id = await submit(api)
    path = f"/ws/generations/{generation_id}/"
    _, other_key = await sync_to_async(api_key_create)(user=other_user, name="other")
    cases = {
        "no credentials": [],
        "another user": key_headers(other_key),
        "bad key": key_headers("dl_nothing.nothing"),
        "foreign origin": key_headers(api_key) + [(b"origin", b"https://evil.example")],
        # The same host on another port (another app on the machine) or scheme is another
        # origin, as for Django's CSRF check.
        "another port": key_headers(api_key)
        + [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8001")],
        "another scheme": key_headers(api_key)
        + [(b"host", b"localhost:8000"), (b"origin", b"https://localhost:8000")],
        "a host that is not allowed": key_headers(api_key)
        + [(b"host", b"evil.example"), (b"origin", b"http://evil.example")],
        "not an origin": key_headers(api_key) + [(b"host", b"localhost"), (b"origin", b"null")],
    }
    for name, headers in cases.items():
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=10)
        assert not connected, name
    for host, origin in (
        (b"localhost", b"http://localhost"),
        (b"localhost:8000", b"http://localhost:8000"),
        (b"127.0.0.1:80", b"http://127.0.0.1"),  # the default port, written or not
    ):
        headers = key_headers(api_key) + [(b"host", host), (b"origin", origin)]
        good = await connect(path, headers)
        await good.disconnect()
    scripted = await connect(path, key_headers(api_key))  # no Origin: not a browser
    await scripted.disconnect()


def test_the_pages_scripts_handle_exactly_the_events_the_server_sends():
    """The event names live in ``progress.Event``; the studio and history scripts compare
    ``message.type`` with string literals, so a renamed or new event must show up here."""
    import re
    from pathlib import Path

    from inpainting.progress import Event

    scripts = Path(__file__).resolve().parent.parent / "static" / "js"
    handled = set()
    for script in scripts.rglob("*.js"):  # the studio's modules and the history page
        source = script.read_text()
        handled |= set(re.findall(r'message\.type\s*[!=]==\s*"([a-z]+)"', source))
    assert handled == {event.value for event in Event}


async def receive_until_status(communicator, generation_id: str, status: str) -> list[dict]:
    messages = []
    while not messages or messages[-1].get("status") != status:
        messages.append(await communicator.receive_json_from(timeout=60))
    return messages


async def test_a_socket_opened_with_a_key_closes_when_the_key_is_revoked(api, api_key, user):
    """Events went on reaching a socket after its key was revoked; now the next event closes
    it with 4401 instead of going out."""
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke

    ws = await connect("/ws/generations/", key_headers(api_key))
    first = await submit(api)
    events = await receive_until_status(ws, first, "succeeded")
    assert all(event["id"] == first for event in events)
    key = await sync_to_async(ApiKey.objects.get)(prefix=api_key.partition(".")[0])
    await sync_to_async(api_key_revoke)(api_key=key)
    await submit(api)
    closed = await ws.receive_output(timeout=30)
    while closed["type"] != "websocket.close":  # nothing but the close may come now
        assert closed["type"] != "websocket.send", closed
        closed = await ws.receive_output(timeout=30)
    assert closed["code"] == 4401


async def test_the_jobs_a_new_job_goes_ahead_of_are_told_their_place(
    api, api_key, paused_worker, other_user
):
    """Fair share puts another user's new job ahead of this user's second: that job hears it
    is now 3rd; a job queued behind everyone tells nobody."""
    first, second = [await submit(api) for _ in range(2)]
    ws = await connect(f"/ws/generations/{second}/", key_headers(api_key))
    assert (await ws.receive_json_from(timeout=10))["queue_position"] == 2
    other = APIClient()
    other.force_authenticate(other_user)
    theirs = await submit(other)
    message = await ws.receive_json_from(timeout=10)
    assert (message["status"], message["queue_position"]) == ("queued", 3)
    last = await submit(api)  # alice's third goes behind everyone: nothing to tell
    assert await ws.receive_nothing(timeout=1)
    for job, client in ((first, api), (second, api), (last, api), (theirs, other)):
        await sync_to_async(client.post)(f"/api/generations/{job}/cancel/")
    await ws.disconnect()


async def test_client_frames_are_not_parsed(api_key):
    """Issue 76: client JSON is bounded everywhere; these sockets only send, so a client's
    frames (here 1 MB of nested brackets, which json.loads would refuse only after a
    RecursionError on the event loop) are not read at all, and the socket stays open."""
    stream = await connect("/ws/generations/", key_headers(api_key))
    await stream.send_to(text_data="[" * (1024 * 1024))
    await stream.send_to(text_data='{"not": "read"}')
    assert await stream.receive_nothing(timeout=0.5)
    await stream.disconnect()
