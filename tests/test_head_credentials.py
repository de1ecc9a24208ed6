"""``accounts.authentication.user_from_head``: the credentials a request's head brings, which
the web server checks before it reads a body (``dreamlayer_site/serve.py``; the live server's
side is ``tests/test_request_bodies.py``)."""

from __future__ import annotations

import base64
import uuid

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework import exceptions

from accounts.authentication import user_from_head
from accounts.models import ApiKey
from accounts.services import api_key_revoke

pytestmark = pytest.mark.django_db

SESSION = django_settings.SESSION_COOKIE_NAME


def fresh_address() -> str:
    """A client address of its own: the wrong-key counters live in Redis across tests."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def head(path: str = "/api/img2img", address: str = "", **headers: str):
    """``user_from_head`` for a head with ``headers`` (``x_api_key`` for ``x-api-key``)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return user_from_head(named, path, address=address or fresh_address())


def test_a_key_in_any_header_the_api_reads(user, api_key):
    basic = base64.b64encode(f"anyone:{api_key}".encode()).decode()
    for headers in (
        {"authorization": f"Api-Key {api_key}"},
        {"authorization": f"Bearer {api_key}"},
        {"x_api_key": api_key},
        {"authorization": f"Basic {basic}"},
    ):
        assert head(**headers) == user, headers


def test_a_key_in_the_path_is_the_only_credential(user, api_key):
    path = f"/k/{api_key}/sdapi/v1/img2img"
    assert head(path) == user
    with pytest.raises(exceptions.AuthenticationFailed):  # a header beside it is not read
        head("/k/dl_wrong.key/sdapi/v1/img2img", authorization=f"Api-Key {api_key}")


def test_wrong_revoked_and_malformed_credentials_are_refused(user, api_key):
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid API key"):
        head(authorization="Api-Key dl_AAAAAAAA." + "B" * 32)
    with pytest.raises(exceptions.AuthenticationFailed, match="Malformed"):
        head(authorization="Basic %%%")
    with pytest.raises(exceptions.AuthenticationFailed, match="another site"):
        basic = base64.b64encode(f"me:{api_key}".encode()).decode()
        head(
            authorization=f"Basic {basic}", sec_fetch_site="cross-site", origin="https://x.example"
        )
    api_key_revoke(api_key=ApiKey.objects.get(prefix=api_key.partition(".")[0]))
    with pytest.raises(exceptions.AuthenticationFailed, match="revoked"):
        head(x_api_key=api_key)


def test_wrong_keys_count_against_the_address_as_the_api_counts_them(settings, throttle_clock):
    settings.THROTTLE_KEY_FAILURES = "2/minute"
    here = fresh_address()
    for _ in range(2):
        with pytest.raises(exceptions.AuthenticationFailed):
            head(address=here, x_api_key="dl_CCCCCCCC." + "D" * 32)
    with pytest.raises(exceptions.Throttled):
        head(address=here, x_api_key="dl_CCCCCCCC." + "D" * 32)


def test_a_logged_in_session_and_nothing_else(user):
    browser = Client()
    browser.force_login(user)
    cookie = f"csrftoken=x; {SESSION}={browser.cookies[SESSION].value}"
    assert head(cookie=cookie) == user
    assert head(cookie=cookie) == user  # only read: the session is still there
    assert head(cookie=f"{SESSION}=nobody") is None
    assert head() is None
    browser.logout()
    assert head(cookie=cookie) is None
