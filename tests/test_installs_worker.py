"""Model installs through the session's housekeeping worker (the ``default`` queue), as a
staff key sends them: a LoRA by URL with its progress on the websocket, and a cancel that
leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import api_key_create
from inpainting.models import LibraryModel, ModelInstall
from inpainting.services import installs
from inpainting.testing.tiny_lora import write_tiny_lora
from tests.helpers import wait_for_row_status
from tests.test_websocket import connect, key_headers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker", "installer"),
]


@pytest.fixture
def staff_key(staff_user):
    return api_key_create(user=staff_user, name="ops")[1]


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


async def test_a_lora_by_url_installs_on_the_worker_with_progress_on_the_websocket(
    fake_hub, tiny_model, models_dir, staff_key, tmp_path
):
    lora = write_tiny_lora(tiny_model, tmp_path / "ink.safetensors", layout="peft")
    fake_hub.plain["ink.safetensors"] = lora.read_bytes()
    fake_hub.bytes_per_second = 40_000  # the tiny LoRA's 5 blocks in about 2 s
    socket = await connect("/ws/generations/", key_headers(staff_key))
    started = await sync_to_async(_client(staff_key).post)(
        "/api/models/installs",
        {"source": f"{fake_hub.files_url}/files/ink.safetensors", "kind": "lora"},
        format="json",
    )
    assert started.status_code == 202, started.content
    events = []
    while not events or events[-1]["status"] not in ("succeeded", "failed"):
        event = await socket.receive_json_from(timeout=60)
        assert event["type"] == "install" and event["id"] == started.json()["id"]
        events.append(event)
    await socket.disconnect()
    assert events[-1]["status"] == "succeeded", events[-1]["error"]
    running = [e for e in events if e["status"] == "running"]
    assert running and running[0]["bytes_done"] < lora.stat().st_size  # seen on its way
    # On its way with a speed and the time left at that speed (what the admin page shows).
    timed = [e for e in running if e["bytes_per_second"] and e["bytes_done"] < e["bytes_total"]]
    assert timed, running
    for event in timed:
        assert 0 < event["bytes_per_second"] < 2 * fake_hub.bytes_per_second
        left = (event["bytes_total"] - event["bytes_done"]) / event["bytes_per_second"]
        assert event["seconds_left"] == pytest.approx(left) and event["seconds_left"] > 0
    assert events[-1]["bytes_done"] == events[-1]["bytes_total"] == lora.stat().st_size
    row = await sync_to_async(LibraryModel.objects.get)(kind="lora", name="ink.safetensors")
    assert row.family == "sd15"
    assert (Path(settings.LORAS_DIR) / "ink.safetensors").read_bytes() == lora.read_bytes()


def test_a_cancel_reaches_the_worker_and_leaves_nothing(
    fake_hub, tiny_model, models_dir, staff_key
):
    fake_hub.add_folder("tests/tiny-inpaint", tiny_model)
    fake_hub.bytes_per_second = 200_000
    client = _client(staff_key)
    started = client.post("/api/models/installs", {"source": "tests/tiny-inpaint"}, format="json")
    install_id = started.json()["id"]
    deadline = time.monotonic() + 30
    while ModelInstall.objects.get(pk=install_id).bytes_done == 0:
        assert time.monotonic() < deadline, "the worker never started the install"
        time.sleep(0.05)
    assert client.delete(f"/api/models/installs/{install_id}").json()["status"] == "cancelled"
    staging = installs._staging(ModelInstall.objects.get(pk=install_id))
    deadline = time.monotonic() + 30
    while staging.exists():  # the worker stops at its next progress tick and deletes it
        assert time.monotonic() < deadline, "the cancelled download is still on disk"
        time.sleep(0.05)
    assert wait_for_row_status(ModelInstall, install_id, {"cancelled"}).status == "cancelled"
    assert not (Path(settings.MODELS_DIR) / "tiny-inpaint").exists()
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()
