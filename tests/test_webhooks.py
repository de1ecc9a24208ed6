"""Webhooks: one signed POST per finished job, retried with backoff, SSRF rules applied."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from rest_framework.test import APIClient

from accounts.services import webhook_secret_of, webhook_secret_rotate
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


def signature_fields(delivery) -> dict[str, str]:
    return dict(part.split("=", 1) for part in delivery["signature"].split(","))


def signed_by(delivery, secret: str, url: str) -> bool:
    """What a receiver does: recompute the HMAC over "<t>.<id>.<its own URL>.<body>" with
    its owner's secret and compare."""
    fields = signature_fields(delivery)
    signed = f"{fields['t']}.{fields['id']}.{url}.".encode() + delivery["body"]
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(fields["v1"], expected)


def verify(delivery, user, url: str) -> dict:
    assert signed_by(delivery, webhook_secret_of(user=user), url)
    fields = signature_fields(delivery)
    assert abs(int(fields["t"]) - time.time()) < 120
    body = json.loads(delivery["body"])
    assert fields["id"] == body["id"]  # the delivery id: the job's
    return body


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
    body = verify(Receiver.received[-1], generation.owner, receiver)
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
    assert verify(Receiver.received[0], generation.owner, receiver)["status"] == "cancelled"


def test_modelslab_webhook_with_track_id(api_key, user, receiver):
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
    delivered = verify(Receiver.received[-1], user, receiver)
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


def test_each_user_signs_with_a_secret_of_their_own(api, other_api, user, other_user, receiver):
    """One deployment-wide secret let any user forge a delivery to another user's receiver;
    now a delivery for user A does not verify with user B's secret, nor for another URL, and
    a replay carries the id a receiver has seen already."""
    generation_id = post_img2img(
        api, image_png(), black_box_mask_png(), webhook_url=receiver
    ).json()["id"]
    wait_webhook(generation_id)
    delivery = Receiver.received[-1]
    mine, theirs = webhook_secret_of(user=user), webhook_secret_of(user=other_user)
    assert mine != theirs and mine.startswith("whsec_") and len(mine) == 64
    assert signed_by(delivery, mine, receiver)
    assert not signed_by(delivery, theirs, receiver)
    assert not signed_by(delivery, mine, receiver + "-elsewhere")
    seen = {signature_fields(delivery)["id"]}
    assert signature_fields(delivery)["id"] == generation_id
    # A replayed capture carries an id the receiver has seen; changing the id breaks the
    # signature, so a replay cannot pass for a new delivery.
    forged = dict(delivery, signature=delivery["signature"].replace(generation_id, "f" * 32))
    assert not signed_by(forged, mine, receiver)
    # The next job's delivery carries a new id; a replaced secret signs from then on.
    old = mine
    new = webhook_secret_rotate(user=user)
    second = post_img2img(api, image_png(), black_box_mask_png(), webhook_url=receiver).json()["id"]
    wait_webhook(second)
    later = Receiver.received[-1]
    assert signature_fields(later)["id"] == second not in seen
    assert signed_by(later, new, receiver) and not signed_by(later, old, receiver)


def test_the_keys_page_shows_the_secret_and_replaces_it(client, user):
    client.force_login(user)
    page = client.get("/accounts/keys/")
    secret = webhook_secret_of(user=user)
    assert secret in page.content.decode()
    assert "private" in page["Cache-Control"]
    answer = client.post("/accounts/keys/webhook-secret/rotate/", follow=True)
    user.refresh_from_db()
    assert user.webhook_secret != secret and user.webhook_secret in answer.content.decode()
