"""Round two (issue 14): sign-ups, failed log-ins across user names and unusable API keys are
throttled per address; an idempotency key replays only the request it was first used for,
and no file outlives a rolled-back row."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from inpainting.models import Generation
from inpainting.services import generations
from tests.helpers import black_box_mask_png, image_png, post_img2img

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("throttle_clock")]


def address() -> str:
    """A fresh client address per test: the counters live in Redis across tests."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def test_sign_ups_from_one_address_are_throttled(settings, django_user_model):
    settings.THROTTLE_SIGNUP = "2/hour"
    client, here = Client(), address()
    for n in range(2):
        page = client.post(
            "/accounts/signup/",
            {"username": f"new{n}", "password1": "a-long-pass-9z", "password2": "a-long-pass-9z"},
            REMOTE_ADDR=here,
        )
        assert page.status_code == 302, page.content[:500]
        client.logout()
    page = client.post(
        "/accounts/signup/",
        {"username": "new2", "password1": "a-long-pass-9z", "password2": "a-long-pass-9z"},
        REMOTE_ADDR=here,
    )
    assert page.status_code == 429
    assert b"Too many accounts were created from your address; try again in" in page.content
    assert not django_user_model.objects.filter(username="new2").exists()
    elsewhere = Client().post(
        "/accounts/signup/",
        {"username": "new3", "password1": "a-long-pass-9z", "password2": "a-long-pass-9z"},
        REMOTE_ADDR=address(),
    )
    assert elsewhere.status_code == 302  # another address is not affected


def test_failed_log_ins_across_user_names_are_throttled_per_address(settings, django_user_model):
    settings.THROTTLE_LOGIN_FAILURES = "5/hour"
    for n in range(7):
        django_user_model.objects.create_user(username=f"victim{n}", password="right-pass-1")
    client, here = Client(), address()
    for n in range(5):  # one wrong password per name: axes' name + address lock never trips
        page = client.post(
            "/accounts/login/", {"username": f"victim{n}", "password": "Winter2026!"},
            REMOTE_ADDR=here,
        )  # fmt: skip
        assert page.status_code == 200
    for url in ("/accounts/login/", "/admin/login/"):
        page = client.post(
            url, {"username": "victim6", "password": "right-pass-1"}, REMOTE_ADDR=here
        )
        assert page.status_code == 429, url
        assert b"Too many failed log-ins came from your address" in page.content
    assert "_auth_user_id" not in client.session
    other = Client().post(
        "/accounts/login/",
        {"username": "victim6", "password": "right-pass-1"},
        REMOTE_ADDR=address(),
    )
    assert other.status_code == 302


def test_unusable_api_keys_are_throttled_per_address(settings, api_key):
    """Wrong keys from one address are answered 429 past the limit, and a valid key from the
    same address still works (issue 51: 20 wrong keys a minute from behind an office NAT
    locked every valid key out of that address)."""
    settings.THROTTLE_KEY_FAILURES = "20/minute"
    client, here = APIClient(), address()
    answers = [
        client.get(
            "/api/generations/", HTTP_X_API_KEY=f"dl_guess{guess}.{'x' * 32}", REMOTE_ADDR=here
        )
        for guess in range(22)
    ]
    assert [answer.status_code for answer in answers] == [401] * 20 + [429] * 2
    assert answers[-1].json()["message"].startswith("Too many wrong API keys from your address")
    assert int(answers[-1]["Retry-After"]) >= 1
    body_key = client.post(
        "/api/v6/images/inpaint",
        {"key": "dl_nothing.nothing", "init_image": "x", "mask_image": "x"},
        format="json",
        REMOTE_ADDR=here,
    )
    assert body_key.status_code == 429  # the ModelsLab key in the body counts the same
    ok = client.get("/api/generations/", HTTP_X_API_KEY=api_key, REMOTE_ADDR=here)
    assert ok.status_code == 200  # a valid key from the flooded address works
    ok_in_body = client.post(
        "/api/v6/images/fetch/00000000-0000-0000-0000-000000000000",
        {"key": api_key},
        format="json",
        REMOTE_ADDR=here,
    )
    assert ok_in_body.status_code != 429 and ok_in_body.status_code != 401


def test_a_throttled_address_is_let_back_in_when_its_retry_after_has_passed(
    settings, api_key, throttle_clock
):
    """A fixed window: the 429 says how long is left of it, and once that has passed the same
    address is answered again (a lock-out that never lifted would keep a NAT's users out)."""
    settings.THROTTLE_KEY_FAILURES = "2/minute"
    client, here = APIClient(), address()

    def wrong_key():
        return client.get("/api/generations/", HTTP_X_API_KEY="dl_guess.x", REMOTE_ADDR=here)

    assert [wrong_key().status_code for _ in range(3)] == [401, 401, 429]
    refused = wrong_key()
    assert refused.status_code == 429 and refused["Retry-After"] == "30"  # half a minute left
    throttle_clock.now += 29
    assert wrong_key().status_code == 429
    throttle_clock.now += 1
    assert wrong_key().status_code == 401  # the next minute counts from zero


# --- idempotency keys -----------------------------------------------------------------------


def test_an_idempotency_key_replays_only_its_own_request(api, user, api_key, paused_worker):
    headers = {"Idempotency-Key": "order-7"}
    first = post_img2img(api, image_png(), black_box_mask_png(), headers=headers, wait="false")
    again = post_img2img(api, image_png(), black_box_mask_png(), headers=headers, wait="false")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other_body = post_img2img(
        api, image_png(), black_box_mask_png(), headers=headers, wait="false", prompt="changed"
    )
    assert other_body.status_code == 422
    assert "already used for a different request" in other_body.json()["message"]
    other_file = post_img2img(
        api, image_png(97, 64), black_box_mask_png(97, 64), headers=headers, wait="false"
    )
    assert other_file.status_code == 422
    other_endpoint = Client().post(
        "/api/v6/images/inpaint",
        {
            "key": api_key,
            "init_image": base64.b64encode(image_png()).decode(),
            "mask_image": base64.b64encode(black_box_mask_png()).decode(),
        },
        content_type="application/json",
        headers=headers,
    )
    assert other_endpoint.status_code == 422
    assert Generation.objects.count() == 1


def _stored_files() -> set[Path]:
    return {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}


def test_the_loser_of_an_idempotency_race_leaves_no_file(api, user, paused_worker, monkeypatch):
    """Two requests with one key, both past the look-up before either commits: the second
    insert fails on the unique key, its row is rolled back, and so are its files."""
    headers = {"Idempotency-Key": "race-1"}
    winner = post_img2img(api, image_png(), black_box_mask_png(), headers=headers, wait="false")
    before = _stored_files()
    real_replay = generations.generation_replay
    calls = []

    def replay_as_if_not_yet_committed(sender):
        calls.append(sender.idempotency_key)
        return None if len(calls) == 1 else real_replay(sender)

    monkeypatch.setattr(generations, "generation_replay", replay_as_if_not_yet_committed)
    loser = post_img2img(api, image_png(), black_box_mask_png(), headers=headers, wait="false")
    assert loser.status_code == 202 and loser.json()["id"] == winner.json()["id"]
    assert len(calls) == 2  # the look-up, then the insert that lost the race
    assert _stored_files() == before
    assert Generation.objects.count() == 1
