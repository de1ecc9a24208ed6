"""Webhooks: one signed POST per finished job, retried with backoff, SSRF rules applied."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from inpainting.models import Generation
from inpainting.services.webhooks import SIGNATURE_HEADER
from tests.helpers import black_box_mask_png, image_png, post_img2img
from tests.images import box_mask, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []
    failures_left = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.received.append({"body": body, "signature": self.headers[SIGNATURE_HEADER]})
        status = 500 if cls.failures_left > 0 else 200
        cls.failures_left -= 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the receiver is on loopback
    Receiver.received = []
    Receiver.failures_left = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def verify(delivery) -> dict:
    """What a receiver does: recompute the HMAC over "<t>.<body>" and compare."""
    fields = dict(part.split("=", 1) for part in delivery["signature"].split(","))
    expected = hmac.new(
        django_settings.WEBHOOK_SECRET.encode(),
        fields["t"].encode() + b"." + delivery["body"],
        hashlib.sha256,
    )
    assert hmac.compare_digest(fields["v1"], expected.hexdigest())
    assert abs(int(fields["t"]) - time.time()) < 120
    return json.loads(delivery["body"])


def wait_webhook(generation_id, timeout=30) -> Generation:
    deadline = time.monotonic() + timeout
    while True:
        generation = Generation.objects.get(pk=generation_id)
        if generation.webhook_status in ("delivered", "failed"):
            return generation
        assert time.monotonic() < deadline, generation.webhook_status
        time.sleep(0.05)


def test_one_signed_post_per_finished_job_retried_with_backoff(api, receiver):
    Receiver.failures_left = 1  # the first attempt gets a 500
    response = post_img2img(api, image_png(), black_box_mask_png(), webhook_url=receiver)
    assert response.status_code == 200
    generation = wait_webhook(response.json()["id"])
    assert generation.webhook_status == "delivered" and generation.webhook_attempts == 2
    assert len(Receiver.received) == 2
    body = verify(Receiver.received[-1])
    assert body["status"] == "success" and body["id"] == str(generation.pk)
    assert body["images"][0].endswith(f"/api/generations/{generation.pk}/images/0.png")
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["webhook"] == {
        "url": receiver,
        "status": "delivered",
        "attempts": 2,
        "error": None,
    }
    time.sleep(0.5)
    assert len(Receiver.received) == 2  # nothing more once delivered


def test_gives_up_after_the_maximum_attempts(api, receiver):
    Receiver.failures_left = 100
    generation_id = post_img2img(
        api, image_png(), black_box_mask_png(), webhook_url=receiver
    ).json()["id"]
    generation = wait_webhook(generation_id, timeout=60)
    assert generation.webhook_status == "failed" and generation.webhook_attempts == 5
    assert "gave up after 5 attempts" in generation.webhook_error


def test_failed_and_cancelled_jobs_are_reported_too(api, receiver, paused_worker):
    generation_id = post_img2img(
        api, image_png(), black_box_mask_png(), wait="false", webhook_url=receiver
    ).json()["id"]
    api.post(f"/api/generations/{generation_id}/cancel/")
    generation = wait_webhook(generation_id)
    assert generation.webhook_status == "delivered"
    assert verify(Receiver.received[0])["status"] == "cancelled"


def test_modelslab_webhook_with_track_id(api_key, receiver):
    import base64

    body = {
        "key": api_key,
        "prompt": "x",
        "init_image": base64.b64encode(image_png()).decode(),
        "mask_image": base64.b64encode(
            png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))
        ).decode(),
        "webhook": receiver,
        "track_id": "order-17",
    }
    answer = APIClient().post("/api/v6/images/inpaint", body, format="json").json()
    wait_webhook(answer["id"])
    delivered = verify(Receiver.received[-1])
    assert delivered["status"] == "success" and delivered["track_id"] == "order-17"
    assert delivered["id"] == answer["id"]


@pytest.mark.parametrize(
    "url,words",
    [
        ("http://127.0.0.1:9/hook", "private or local address"),
        ("http://169.254.169.254/hook", "private or local address"),
        ("ftp://example.com/hook", "must be http or https"),
    ],
)
def test_private_webhook_urls_are_refused(api, url, words):
    response = post_img2img(api, image_png(), black_box_mask_png(), webhook_url=url)
    assert response.status_code == 400 and words in response.json()["message"]
    assert Generation.objects.count() == 0
