"""The web process' PostgreSQL connections (``dreamlayer_site/settings.py``,
``DATABASE_POOL_MAX``): taken from a pool and given back, so a request opens none of its own
(Django under ASGI keeps no persistent connection: each request, and the server's check of a
request's head, opened one and closed it)."""

import pytest
import requests
from django.db import connection

from tests.helpers import black_box_mask_png

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="a pool of PostgreSQL connections"
    ),
]
REQUESTS = 40


def sessions_opened() -> int:
    """Connections PostgreSQL has accepted to this database since its statistics began."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_requests_to_the_web_process_take_pooled_connections(compat_server, api_key):
    headers = {"Authorization": f"Api-Key {api_key}"}
    listed = requests.get(f"{compat_server}/api/generations/", headers=headers, timeout=30)
    assert listed.status_code == 200  # the pool is open
    before = sessions_opened()
    for index in range(REQUESTS):
        if index % 2:
            answer = requests.get(f"{compat_server}/api/generations/", headers=headers, timeout=30)
            assert answer.status_code == 200
        else:  # a body the server's head check lets in and the view refuses
            files = {"mask": ("m.png", black_box_mask_png(), "image/png")}
            answer = requests.post(
                f"{compat_server}/api/img2img", headers=headers, files=files, timeout=30
            )
            assert answer.status_code == 400 and "image" in answer.json()["errors"]
    opened = sessions_opened() - before
    # Without the pool: at least one a request (40 here); with it, what the pool adds.
    assert opened <= 5, f"{opened} connections opened for {REQUESTS} requests"


def test_pooled_connections_ended_by_the_server_cost_no_request_an_error(compat_server, api_key):
    """As after a restart of PostgreSQL: the pool's connections are gone, and each is checked
    as it is taken, so the next requests get new ones."""
    headers = {"Authorization": f"Api-Key {api_key}"}
    first = requests.get(f"{compat_server}/api/generations/", headers=headers, timeout=30)
    assert first.status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'dreamlayer web'"
        )
        ended = cursor.fetchall()
    assert ended and all(row[0] for row in ended)  # the pool kept its connections open
    answers = [
        requests.get(f"{compat_server}/api/generations/", headers=headers, timeout=30)
        for _ in range(5)
    ]
    assert [answer.status_code for answer in answers] == [200] * 5
