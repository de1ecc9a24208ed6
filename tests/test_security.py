"""Deployment checks, CSP, login throttling, and API keys that never appear in plain text."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.admin.utils import quote
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import api_key_create, api_key_revoke
from tests.conftest import ROOT, child_env
from tests.helpers import black_box_mask_png, image_png, wait_for_status
from tests.live import daphne_server

pytestmark = pytest.mark.django_db


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        DJANGO_SETTINGS_MODULE="dreamlayer_site.settings",
        DJANGO_DEBUG="false",
        DJANGO_HTTPS="true",
        DJANGO_SECRET_KEY="k" * 10 + "production-grade-secret-with-enough-entropy-9f3a7c1e5b2d",
        DJANGO_ALLOWED_HOSTS="dreamlayer.example.com",
        DREAMLAYER_DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_pages_carry_a_content_security_policy(client, user):
    client.force_login(user)
    for url in ("/", "/history/", "/accounts/keys/", "/accounts/login/"):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert "unsafe-inline" not in policy and "object-src 'none'" in policy
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"


def test_image_responses_carry_nosniff_and_a_sandbox_policy(api):
    response = api.post(
        "/api/masks/effective",
        {"mask": _file("m.png", black_box_mask_png()), "width": 96, "height": 64},
        format="multipart",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def _file(name, data, content_type="image/png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


def test_login_is_throttled_after_repeated_failures(client, user):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        page = client.post("/accounts/login/", {"username": "alice", "password": f"wrong{attempt}"})
        assert page.status_code == 200  # the form again, with its error
        assert b"Please enter a correct username and password" in page.content
    locked = client.post("/accounts/login/", {"username": "alice", "password": "wrong-again"})
    assert locked.status_code == 429
    assert b"Too many failed log-ins" in locked.content
    # Even the right password is refused while the lock holds, and no session is created.
    right = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert right.status_code == 429
    assert client.get("/api/generations/").status_code in (401, 403)


def log_in(client, password: str) -> int:
    return client.post("/accounts/login/", {"username": "alice", "password": password}).status_code


def test_a_successful_login_resets_the_failure_count(client, user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong")
    assert log_in(client, "pw-alice-123") == 302
    client.logout()
    log_in(client, "wrong")
    assert log_in(client, "pw-alice-123") == 302


@pytest.mark.parametrize("name", ["api_key", "key", "apikey", "X-API-Key", "token"])
def test_http_never_accepts_a_key_in_the_query_string(api_key, name):
    response = APIClient().get("/api/generations/", {name: api_key})
    assert response.status_code == 401
    assert response.json()["message"].startswith("No API key: send it as")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_no_key_in_plain_text_anywhere(user, staff_user, celery_worker, tmp_path):
    """Use a key every way it can be used, then look for its secret in every table, every
    log and the admin pages: only its hash and prefix are ever stored or shown."""
    _, key = api_key_create(user=user, name="laptop")
    revoked_row, revoked_key = api_key_create(user=user, name="old")
    api_key_revoke(api_key=revoked_row)
    secrets = [key.partition(".")[2], revoked_key.partition(".")[2]]
    log = Path(settings.DATA_DIR) / "daphne-keys.log"
    access_log = tmp_path / "access.log"
    env = child_env(LOG_LEVEL="DEBUG")
    with daphne_server(env, log, "--access-log", str(access_log)) as url:
        headers = {"Authorization": f"Api-Key {key}"}
        files = {
            "image": ("in.png", image_png(), "image/png"),
            "mask": ("m.png", black_box_mask_png(), "image/png"),
        }
        submitted = requests.post(
            f"{url}/api/img2img", headers=headers, files=files, data={"wait": "false"}, timeout=30
        )
        assert submitted.status_code == 202
        generation_id = submitted.json()["id"]
        assert requests.get(f"{url}/api/generations/?api_key={key}", timeout=10).status_code == 401
        refused = requests.get(
            f"{url}/api/generations/", headers={"X-API-Key": revoked_key}, timeout=10
        )
        assert refused.status_code == 401
        assert refused.json()["message"] == "This API key has been revoked."
        status = asyncio.run(_websocket_status(url, generation_id, key))
        assert status["id"] == generation_id
        wait_for_status(generation_id)
    admin = APIClient()
    admin.force_login(staff_user)
    staff_user.is_superuser = True
    staff_user.save()
    # The admin quotes a key's id in its links ("dl_3A" would read as "dl:"): as followed.
    change = admin.get(f"/admin/accounts/apikey/{quote(revoked_row.pk)}/change/")
    assert change.status_code == 200  # the page itself, not a redirect to the index
    pages = [admin.get("/admin/accounts/apikey/").content, change.content]
    places = {
        "daphne log": log.read_text(),
        "access log": access_log.read_text(),
        "worker log": celery_worker.log.read_text(),
        "database": _database_text(),
        "admin": b"".join(pages).decode(),
    }
    # The requests were logged (the refused URL with its key redacted), never the key.
    assert f"/ws/generations/{generation_id}/" in places["access log"]
    assert f"?api_key={key.partition('.')[0]}.[redacted]" in places["access log"]
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, (
                f"an API key secret appears in the {place}"
            )  # ...never the key


async def _websocket_status(url: str, generation_id: str, key: str) -> dict:
    import websockets

    ws_url = url.replace("http://", "ws://") + f"/ws/generations/{generation_id}/?api_key={key}"
    async with websockets.connect(ws_url, open_timeout=10) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def _database_text() -> str:
    """Every text value in every table of the project's database."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(str(value) for row in cursor.fetchall() for value in row)
    return "\n".join(chunks)
