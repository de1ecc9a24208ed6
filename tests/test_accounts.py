"""Authentication: session, API key (all three headers, HTTP and websocket), revoked, expired,
none; keys hashed."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from dreamlayer_site.asgi import application

pytestmark = pytest.mark.django_db
URL = "/api/generations/"
NO_KEY = (
    "No API key: send it as 'Authorization: Api-Key <key>', 'Authorization: Bearer <key>' or "
    "'X-API-Key: <key>' (create one on the API keys page)."
)


def test_no_credentials_is_refused_with_the_error_shape_and_says_how_to_send_a_key():
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": NO_KEY, "errors": {}}
    assert response.headers["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_api_key_as_a_bearer_token(user, api_key, scheme):
    """``curl -H "Authorization: Bearer <key>"``, as the OpenAI SDK sends its key."""
    response = APIClient().get(URL, headers={"Authorization": f"{scheme} {api_key}"})
    assert response.status_code == 200, response.content
    assert ApiKey.objects.get(user=user).last_used is not None


def test_a_wrong_bearer_key_is_refused(api_key):
    forged = api_key.partition(".")[0] + ".x" * 16
    for key in (forged, "sk-not-a-dreamlayer-key"):
        response = APIClient().get(URL, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401
        assert response.json()["message"] == "Invalid API key."


def test_an_empty_bearer_or_another_scheme_is_no_credentials(api_key):
    for value in ("Bearer ", "Bearer", f"Token {api_key}", f"Basic {api_key}"):
        response = APIClient().get(URL, headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.json()["message"] == NO_KEY


@pytest.mark.django_db(transaction=True)
def test_the_websocket_handshake_takes_a_bearer_key_too(api_key):
    async def handshake(authorization: str) -> bool:
        headers = [(b"authorization", authorization.encode()), (b"host", b"testserver")]
        communicator = WebsocketCommunicator(application, "/ws/generations/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        await communicator.disconnect()
        return connected

    assert async_to_sync(handshake)(f"Bearer {api_key}")
    assert not async_to_sync(handshake)("Bearer dl_nothing.nothing")


def test_session_login(user):
    client = APIClient()
    page = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert page.status_code == 302
    assert client.get(URL).status_code == 200


def test_api_key_in_authorization_header_identifies_the_user(user, api_key):
    response = APIClient().get(URL, headers={"Authorization": f"Api-Key {api_key}"})
    assert response.status_code == 200
    key = ApiKey.objects.get(user=user)
    assert key.last_used is not None


def test_last_used_is_written_at_most_once_a_minute(user, api_key):
    headers = {"Authorization": f"Api-Key {api_key}"}
    APIClient().get(URL, headers=headers)
    first = ApiKey.objects.get(user=user).last_used
    APIClient().get(URL, headers=headers)
    assert ApiKey.objects.get(user=user).last_used == first
    ApiKey.objects.filter(user=user).update(last_used=first - timedelta(minutes=2))
    APIClient().get(URL, headers=headers)
    assert ApiKey.objects.get(user=user).last_used >= first


def test_api_key_in_x_api_key_header(api_key):
    assert APIClient().get(URL, headers={"X-API-Key": api_key}).status_code == 200


def test_key_format_and_only_a_hash_is_stored(user):
    row, key = api_key_create(user=user, name="laptop")
    prefix, _, secret = key.partition(".")
    assert prefix.startswith("dl_") and len(prefix) == 11 and len(secret) == 32
    assert row.prefix == prefix
    stored = ApiKey.objects.filter(pk=row.pk).values().get()
    assert not any(secret in str(value) for value in stored.values())
    assert stored["hashed_key"].startswith("sha512$$")


def test_wrong_secret_is_refused(api_key):
    forged = api_key.partition(".")[0] + ".x" * 16
    response = APIClient().get(URL, headers={"Authorization": f"Api-Key {forged}"})
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid API key."


def test_revoked_key_is_refused(user, api_key):
    api_key_revoke(api_key=ApiKey.objects.get(user=user))
    response = APIClient().get(URL, headers={"Authorization": f"Api-Key {api_key}"})
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_expired_key_is_refused(user):
    row, key = api_key_create(user=user, name="old", expires_in_days=1)
    ApiKey.objects.filter(pk=row.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    response = APIClient().get(URL, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_disabled_account_key_is_refused(user, api_key):
    user.is_active = False
    user.save()
    assert APIClient().get(URL, headers={"X-API-Key": api_key}).status_code == 401


def test_create_api_key_command_prints_a_working_key_once(user, capsys):
    call_command("create_api_key", "alice", "--name", "ci", "--expires", "30")
    key = capsys.readouterr().out.strip()
    assert key.startswith("dl_")
    assert APIClient().get(URL, headers={"X-API-Key": key}).status_code == 200
    row = ApiKey.objects.get(name="ci")
    assert row.expiry_date > timezone.now() + timedelta(days=29)


def test_login_page_and_home_requires_login(client, user):
    assert client.get("/").status_code == 302
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Log in" in page.content
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
