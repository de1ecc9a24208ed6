"""Against a real daphne process: waiting img2img clients do not block anyone else."""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import child_env
from tests.helpers import black_box_mask_png, image_png
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)
CLIENTS = 20


@pytest.fixture
def daphne(django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env(MAX_ACTIVE_GENERATIONS_PER_USER="50", IMG2IMG_WAIT_SECONDS="60")
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne.log") as url:
        yield url


def test_twenty_waiting_clients_do_not_block_health(daphne, api_key, paused_worker):
    headers = {"Authorization": f"Api-Key {api_key}"}
    image, mask = image_png(), black_box_mask_png()

    def generate(_):
        files = {"image": ("in.png", image, "image/png"), "mask": ("m.png", mask, "image/png")}
        return requests.post(
            f"{daphne}/api/img2img", headers=headers, files=files, data={"prompt": "x"}, timeout=120
        )

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(generate, i) for i in range(CLIENTS)]
        # Every client has uploaded and is now waiting on its queued job.
        from inpainting.models import Generation

        deadline = time.monotonic() + 60
        while Generation.objects.count() < CLIENTS:
            assert time.monotonic() < deadline, "the uploads did not all arrive"
            time.sleep(0.05)
        assert not any(f.done() for f in futures)
        latencies = []
        for _ in range(10):
            started = time.perf_counter()
            assert requests.get(f"{daphne}/api/health", timeout=5).status_code == 200
            latencies.append(time.perf_counter() - started)
        paused_worker.resume()
        responses = [f.result() for f in futures]
    print(
        f"health while {CLIENTS} clients wait: median {statistics.median(latencies) * 1000:.1f} ms,"
        f" max {max(latencies) * 1000:.1f} ms"
    )
    assert max(latencies) < 0.5
    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert all(r.json()["status"] == "success" for r in responses)
    assert len({r.json()["id"] for r in responses}) == CLIENTS


def test_a_malformed_multipart_body_gets_a_json_400_with_a_message(daphne, api_key):
    """daphne leaves the body to Django (``dreamlayer_site/serve.py``): a broken one gets the
    API's error shape, not Twisted's bare page."""
    response = requests.post(
        f"{daphne}/api/img2img",
        headers={
            "Authorization": f"Api-Key {api_key}",
            "Content-Type": "multipart/form-data; boundary=xyz",
        },
        data=b"no boundary anywhere in this body",
        timeout=30,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["message"]
