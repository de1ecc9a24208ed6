"""The key in the path (ADR 8, issue 37): ``/k/<key>/`` in front of the AUTOMATIC1111 routes,
for clients that send no credentials, attacked: wrong, revoked, expired and another user's
keys, the prefix in front of every other route, a session cookie or HTTP Basic of another
user beside it, the key in the logs, and a page on another origin."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from accounts.keyformat import redact
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from inpainting.models import Generation, SourceImage

pytestmark = pytest.mark.django_db

PAGE = "http://127.0.0.1:3456"  # openOutpaint's page, served from another origin


def through(key: str, path: str) -> str:
    return f"/k/{key}{path}"


def test_the_key_in_the_path_reaches_the_a1111_api_as_its_owner(api_key):
    response = Client().get(through(api_key, "/sdapi/v1/options"))
    assert response.status_code == 200
    assert "sd_model_checkpoint" in response.json()
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    for path in ("/sdapi/v1/sd-models", "/controlnet/version", "/queue/status"):
        assert Client().get(through(api_key, path)).status_code == 200, path
    assert ApiKey.objects.get(prefix=api_key.partition(".")[0]).last_used is not None


def test_a_wrong_revoked_or_expired_key_in_the_path_is_refused(user, api_key):
    client = Client()
    wrong = api_key[:-4] + "AAAA"
    for key, words in ((wrong, "Invalid API key"), ("nonsense", "Invalid API key")):
        response = client.get(through(key, "/sdapi/v1/options"))
        assert response.status_code == 401 and words in response.json()["detail"]
    assert client.get("/k//sdapi/v1/options").status_code == 401
    expired_row, expired = api_key_create(user=user, name="old", expires_in_days=1)
    ApiKey.objects.filter(pk=expired_row.pk).update(expiry_date=timezone.now() - timedelta(1))
    response = client.get(through(expired, "/sdapi/v1/options"))
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert client.get(through(api_key, "/sdapi/v1/options")).status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(prefix=api_key.partition(".")[0]))
    response = client.get(through(api_key, "/sdapi/v1/options"))
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/api/models",
        "/api/img2img",
        "/api/generations/",
        "/admin/",
        "/history/",
        "/accounts/api-keys/",
        "/metrics",
        "/v1/images/edits",
        "/sd-inpaint/health",
        "/api/v6/images/inpaint",
        "/k/other/sdapi/v1/options",
    ],
)
def test_the_prefix_reaches_no_other_route(api_key, path):
    response = Client().get(through(api_key, path))
    assert response.status_code == 404
    assert "AUTOMATIC1111 API only" in response.json()["detail"]


def test_a_cookie_or_http_basic_beside_the_prefix_is_ignored(user, other_user, api_key):
    """The key in the path is the request's only credential: another user's session or HTTP
    Basic beside it neither helps a wrong key nor changes whose request it is."""
    _, theirs = api_key_create(user=other_user, name="theirs")
    browser = Client()
    browser.force_login(other_user)
    assert browser.get("/api/models").status_code == 200  # the session works elsewhere
    assert browser.get(through("nonsense", "/sdapi/v1/options")).status_code == 401
    token = base64.b64encode(f"me:{theirs}".encode()).decode()
    basic = {"Authorization": f"Basic {token}"}
    assert Client(headers=basic).get(through("nonsense", "/queue/status")).status_code == 401
    assert (
        Client(headers={"X-API-Key": theirs}).get(through("x", "/queue/status")).status_code == 401
    )
    # With the right key, the request is the key's owner's: its job, not the other user's.
    source = SourceImage.objects.create(owner=other_user, width=1, height=1, sha256="0" * 64)
    Generation.objects.create(owner=other_user, source=source, engine="classical", status="running")
    mine = browser.get(through(api_key, "/sdapi/v1/progress"), headers=basic).json()
    assert mine["state"]["job_count"] == 0
    theirs_progress = Client(headers=basic).get("/sdapi/v1/progress").json()
    assert theirs_progress["state"]["job_count"] == 1


def test_the_key_in_the_path_is_never_logged(api_key, caplog):
    with caplog.at_level(logging.INFO):
        response = Client().get(through(api_key, "/sdapi/v1/no-such-route"))
        assert response.status_code == 404
        Client().get(through("dl_Wrongkey.wrongsecretwrongsecretwrongsecre", "/sdapi/v1/options"))
    logged = caplog.text
    assert "no-such-route" in logged  # Django logs the 4xx paths
    assert api_key not in logged and api_key.partition(".")[2] not in logged
    # The access log writes the path as it came: redacted whole, whatever its shape.
    line = f'"GET /k/{api_key}/sdapi/v1/options HTTP/1.1" 200'
    assert redact(line) == '"GET /k/[redacted]/sdapi/v1/options HTTP/1.1" 200'
    assert redact("GET /k/hunter2/queue/status") == "GET /k/[redacted]/queue/status"


@override_settings(CORS_ALLOWED_ORIGINS=[PAGE])
def test_a_page_of_an_allowed_origin_calls_through_the_prefix_and_another_cannot(api_key):
    client = Client()
    preflight = client.options(
        through(api_key, "/sdapi/v1/img2img"),
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == PAGE
    assert "Access-Control-Allow-Credentials" not in preflight
    called = client.get(through(api_key, "/sdapi/v1/options"), headers={"Origin": PAGE})
    assert called.status_code == 200 and called["Access-Control-Allow-Origin"] == PAGE
    foreign = client.get(
        through(api_key, "/sdapi/v1/options"), headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in foreign  # the browser keeps the answer from it
