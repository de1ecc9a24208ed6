"""Slowloris (issue 14): connections that trickle their headers are closed by a real daphne
process once ``HEADER_TIMEOUT_SECONDS`` pass, while normal requests still get answers. It waits
on the server's timeout rather than measuring a target, so it runs in the parallel part (the
memory and time bounds are in ``test_bounded_work``)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.conftest import child_env
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env()
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-slowloris.log") as url:
        yield url, None


def test_a_connection_that_trickles_its_headers_is_closed(server):
    """Slowloris: 50 connections each sending a header byte every second kept their sockets
    (3,000 stayed open for 70 s); each is closed once HEADER_TIMEOUT_SECONDS pass, while a
    normal request still gets its answer."""
    from dreamlayer_site.serve import HEADER_TIMEOUT_SECONDS

    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(50):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    started = time.monotonic()
    open_ = list(sockets)
    while open_ and time.monotonic() - started < HEADER_TIMEOUT_SECONDS + 10:
        assert requests.get(f"{url}/api/health", timeout=5).status_code == 200
        for sock in list(open_):
            try:
                sock.sendall(b"X")
                sock.setblocking(False)
                if sock.recv(1) == b"":  # closed by the server
                    open_.remove(sock)
            except BlockingIOError:
                pass
            except OSError:
                open_.remove(sock)
            finally:
                sock.setblocking(True)
        time.sleep(1.0)
    closed_after = time.monotonic() - started
    for sock in sockets:
        sock.close()
    print(f"50 trickling connections closed after {closed_after:.1f} s")
    assert not open_, f"{len(open_)} still open after {closed_after:.1f} s"
    assert closed_after < HEADER_TIMEOUT_SECONDS + 5
