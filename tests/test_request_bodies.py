"""Request bodies against a real daphne process (issue 51, finding 2; ``dreamlayer_site/serve.py``):
credentials before a body is read, bodies that stop arriving cut off, and the bodies one process
receives at once bounded. Before, 20 anonymous clients trickling a byte every 20 s held 566 MB of
temporary files for minutes.

The spool is counted as the daphne process' open files in the temporary folder (Twisted spools
a body of 100,000 bytes or more to an unlinked temporary file). The figures are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.test import Client

from accounts.services import api_key_create
from tests.conftest import child_env
from tests.live import daphne_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.stack]

WINDOW_SECONDS = 2.0  # REQUEST_BODY_WINDOW_SECONDS in the server below
MAX_SECONDS = 4.0  # REQUEST_BODY_MAX_SECONDS
SPOOL_CAP = 3 * 1024 * 1024  # REQUEST_BODIES_MAX_BYTES
ANONYMOUS_ALLOWANCE = 64 * 1024  # ANONYMOUS_BODY_MAX_BYTES (the default)
TRICKLERS = 20


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env(
            REQUEST_BODY_WINDOW_SECONDS=str(WINDOW_SECONDS),
            REQUEST_BODY_MAX_SECONDS=str(MAX_SECONDS),
            REQUEST_BODIES_MAX_BYTES=str(SPOOL_CAP),
        )
    log = Path(settings.DATA_DIR) / "daphne-bodies.log"
    with daphne_server(env, log) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = next(c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.pid)
        yield url, pid


@pytest.fixture
def key(django_user_model) -> str:
    user = django_user_model.objects.create_user(username="bodies", password="pw-bodies-1")
    return api_key_create(user=user, name="bodies")[1]


def spool_files(pid: int) -> int:
    """The process' open files in the temporary folder (unlinked ones included)."""
    folder = Path(tempfile.gettempdir()).resolve()
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(f"{folder}/")
    return count


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the head's sending

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class RawClient:
    """A client on a raw socket: a head and part of a body now, the rest when it likes."""

    url: str
    path: str
    length: int | None  # None: chunked
    headers: dict[str, str] = field(default_factory=dict)
    first: bytes = b""
    interim: list[int] = field(default_factory=list)  # 1xx answers read

    def __post_init__(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        framing = (
            f"Content-Length: {self.length}"
            if self.length is not None
            else "Transfer-Encoding: chunked"
        )
        lines = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", framing]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.buffer = b""
        self.started = time.monotonic()
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + self.first)

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _recv(self, deadline: float) -> bytes | None:
        """Some bytes; b"" once the server closed; None at the deadline."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return b""

    def answer(self, timeout: float = 5.0, interim: bool = False) -> Answer | None:
        """The next answer (a 1xx one too with ``interim``); None without one in time."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            data = self._recv(deadline)
            if not data:
                return None
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            self.interim.append(status)
            return (
                Answer(status, headers, b"", time.monotonic() - self.started)
                if interim
                else (self.answer(max(0.01, deadline - time.monotonic())))
            )
        size = int(headers.get("content-length", 0))
        while len(self.buffer) < size:
            data = self._recv(deadline)
            if not data:
                break
            self.buffer += data
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return Answer(status, headers, body, time.monotonic() - self.started)

    def closed_by_server(self, timeout: float = 2.0) -> bool:
        return self._recv(time.monotonic() + timeout) == b""

    def close(self) -> None:
        self.sock.close()


def test_anonymous_bodies_are_refused_before_a_byte_is_spooled(server):
    """20 anonymous clients declaring 20 MB and trickling: each a 401 as soon as its head is in,
    the connection closed, and nothing spooled."""
    url, pid = server
    before = spool_files(pid)
    clients = [
        RawClient(
            url,
            "/api/img2img",
            20 * 1024 * 1024,
            {"Content-Type": "application/octet-stream"},
            first=b"x" * 4096,
        )
        for _ in range(TRICKLERS)
    ]
    answers = [client.answer() for client in clients]
    during = spool_files(pid)
    for _ in range(3):  # they go on trickling: nothing is read any more
        for client in clients:
            client.send(b"x")
        time.sleep(0.5)
    closed = sum(client.closed_by_server() for client in clients)
    for client in clients:
        client.close()
    seconds = max(a.seconds for a in answers if a is not None)
    print(
        f"{TRICKLERS} anonymous trickled 20 MB bodies: statuses "
        f"{sorted({a.status if a else None for a in answers}, key=str)}, slowest 401 in "
        f"{seconds:.2f} s, {closed} closed by the server; spool files before {before}, "
        f"while refused {during}, after {spool_files(pid)}"
    )
    assert all(a is not None and a.status == 401 for a in answers), answers
    assert answers[0].json()["status"] == "error" and "API key" in answers[0].json()["message"]
    assert answers[0].headers["connection"] == "close"
    assert answers[0].headers["www-authenticate"] == "Api-Key"  # as the API's own 401
    assert seconds < 3.0
    assert closed == TRICKLERS
    assert during <= before and spool_files(pid) <= before


def test_slow_bodies_with_a_key_are_cut_off_and_their_spool_freed(server, key):
    """20 clients with a valid key trickling a byte every 0.3 s or so: each a 408 once a window
    brought less than its minimum, the connection closed and the temporary file gone; the
    server answers others meanwhile."""
    url, pid = server
    before = spool_files(pid)
    clients = [
        RawClient(
            url,
            "/api/img2img",
            120_000,
            {"Authorization": f"Api-Key {key}", "Content-Type": "application/octet-stream"},
            first=b"x" * 4096,
        )
        for _ in range(TRICKLERS)
    ]
    time.sleep(0.8)
    spooling = spool_files(pid)
    health = []
    answers: list[Answer | None] = [None] * len(clients)
    while None in answers and time.monotonic() - clients[0].started < WINDOW_SECONDS + 4:
        for index, client in enumerate(clients):
            if answers[index] is None:
                client.send(b"x")
                answers[index] = client.answer(timeout=0.01)
        health.append(requests.get(f"{url}/api/health", timeout=5).status_code)
        time.sleep(0.25)
    after = spool_files(pid)  # the clients still hold their sockets: freed by the 408 itself
    closed = sum(client.closed_by_server() for client in clients)
    for client in clients:
        client.close()
    seconds = [a.seconds for a in answers if a is not None]
    print(
        f"{TRICKLERS} trickled bodies with a key: spool files before {before}, while trickling "
        f"{spooling}, after the cut-off {after}; 408s after {min(seconds):.2f} to "
        f"{max(seconds):.2f} s (window {WINDOW_SECONDS:g} s), {closed} closed; health "
        f"answered {health}"
    )
    assert spooling >= before + TRICKLERS  # they were let in: the key was checked
    assert all(a is not None and a.status == 408 for a in answers), answers
    assert "too slowly" in answers[0].json()["message"]
    assert WINDOW_SECONDS - 0.5 < min(seconds) and max(seconds) < WINDOW_SECONDS + 2.5
    assert closed == TRICKLERS
    assert after <= before
    assert health and set(health) == {200}


def test_a_body_that_keeps_coming_is_cut_off_after_the_longest_time(server, key):
    url, _ = server
    client = RawClient(
        url, "/api/img2img", 1024 * 1024, {"Authorization": f"Api-Key {key}"}, first=b"x" * 4096
    )
    answer = None
    while answer is None and time.monotonic() - client.started < MAX_SECONDS + 3:
        client.send(b"x" * 20_000)  # 40 kB a second: every window is content
        answer = client.answer(timeout=0.5)
    client.close()
    print(
        f"a steady body past REQUEST_BODY_MAX_SECONDS: {answer and answer.status} after "
        f"{answer and answer.seconds:.2f} s"
    )
    assert answer is not None and answer.status == 408, answer
    assert "longer than" in answer.json()["message"]
    assert MAX_SECONDS - 0.5 < answer.seconds < MAX_SECONDS + 1.5


def test_credentials_in_the_head_let_a_body_in(server, key, django_user_model):
    url, _ = server
    body = b"x" * (2 * ANONYMOUS_ALLOWANCE)
    # A logged-in session: Django answers (DRF's CSRF check for a session, here).
    user = django_user_model.objects.create_user(username="session", password="pw-session-1")
    browser = Client()
    browser.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    session = requests.post(f"{url}/api/img2img", data=body, headers={"Cookie": cookie}, timeout=10)
    # A key in the path: the A1111 route reads the body (not a picture: a 4xx of its own).
    in_path = requests.post(
        f"{url}/k/{key}/sdapi/v1/img2img",
        json={"init_images": ["A" * len(body)], "prompt": "x"},
        timeout=10,
    )
    # HTTP Basic with the key as the password (AUTOMATIC1111's --api-auth).
    basic = requests.post(
        f"{url}/sdapi/v1/img2img",
        json={"init_images": ["A" * len(body)], "prompt": "x"},
        auth=("anyone", key),
        timeout=10,
    )
    # Without: a session cookie of nobody, a wrong key (no 100 Continue invites its body).
    nobody = RawClient(url, "/api/img2img", len(body), {"Cookie": "sessionid=nobody"})
    nobody_answer = nobody.answer()
    nobody.close()
    wrong = RawClient(
        url,
        "/api/img2img",
        20 * 1024 * 1024,
        {"Authorization": "Api-Key dl_AAAAAAAA." + "B" * 32, "Expect": "100-continue"},
    )
    wrong_answer = wrong.answer()
    wrong.close()
    # AUTOMATIC1111's routes answer in its shape, with the Basic challenge its clients wait for.
    a1111 = RawClient(url, "/sdapi/v1/img2img", len(body), {"Content-Type": "application/json"})
    a1111_answer = a1111.answer()
    a1111.close()
    print(
        f"over {ANONYMOUS_ALLOWANCE // 1024} KB: session {session.status_code}, /k/<key>/ "
        f"{in_path.status_code}, HTTP Basic {basic.status_code}, unknown session "
        f"{nobody_answer and nobody_answer.status}, wrong key "
        f"{wrong_answer and wrong_answer.status} in {wrong_answer and wrong_answer.seconds:.2f} s"
    )
    assert session.status_code == 403 and "CSRF" in session.text, session.text[:300]
    assert in_path.status_code not in (401, 408, 429, 503), in_path.text[:300]
    assert basic.status_code not in (401, 408, 429, 503), basic.text[:300]
    assert nobody_answer is not None and nobody_answer.status == 401
    assert wrong_answer is not None and wrong_answer.status == 401 and wrong.interim == []
    assert wrong_answer.json() == {"status": "error", "message": "Invalid API key.", "errors": {}}
    assert a1111_answer is not None and a1111_answer.status == 401
    assert a1111_answer.headers["www-authenticate"].startswith("Basic")
    assert "HTTP Basic" in a1111_answer.json()["detail"]


def test_a_log_in_form_needs_no_credentials(server, django_user_model):
    url, _ = server
    django_user_model.objects.create_user(username="form", password="pw-form-1")
    browser = requests.Session()
    page = browser.get(f"{url}/accounts/login/", timeout=10)
    token = page.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    answer = browser.post(
        f"{url}/accounts/login/",
        data={"csrfmiddlewaretoken": token, "username": "form", "password": "pw-form-1"},
        headers={"Referer": f"{url}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    print(f"log-in form: {answer.status_code} to {answer.headers.get('Location')}")
    assert answer.status_code == 302, answer.text[:300]


def test_modelslab_reads_its_key_from_the_body_a_few_at_a_time(server, key):
    url, _ = server
    inpaint = "/api/v6/images/inpaint"
    padding = "A" * (2 * ANONYMOUS_ALLOWANCE)
    answer = requests.post(
        f"{url}{inpaint}",
        json={"key": key, "prompt": "x", "init_image": padding, "mask_image": padding},
        timeout=10,
    )
    assert answer.status_code not in (401, 408, 429, 503), answer.text[:300]
    # Two anonymous bodies in flight from one address; a third waits its turn.
    headers = {"Content-Type": "application/json", "Expect": "100-continue"}
    holding = [RawClient(url, inpaint, 200_000, headers) for _ in range(2)]
    invited = [client.answer(interim=True) for client in holding]
    third = RawClient(url, inpaint, 200_000, headers)
    refused = third.answer()
    third.close()
    for client in holding:
        client.close()  # their connections lost: their places are free again
    time.sleep(0.3)
    again = RawClient(url, inpaint, 200_000, headers)
    invited_again = again.answer(interim=True)
    again.close()
    print(
        f"ModelsLab, key in a 260 KB body: {answer.status_code}; anonymous bodies in flight: "
        f"{[a and a.status for a in invited]}, the third {refused and refused.status} "
        f"(Retry-After {refused and refused.headers.get('retry-after')}), after two closed "
        f"{invited_again and invited_again.status}"
    )
    assert [a and a.status for a in invited] == [100, 100]
    assert refused is not None and refused.status == 429 and int(refused.headers["retry-after"]) > 0
    assert invited_again is not None and invited_again.status == 100


def test_the_bodies_received_at_once_are_bounded_and_released(server, key):
    """With room for 3 MB at once: a second 2 MB body gets a 503 while the first is coming,
    and the room comes back when a body is answered, refused or dropped."""
    url, pid = server
    before = spool_files(pid)
    size = 2 * 1024 * 1024
    headers = {
        "Authorization": f"Api-Key {key}",
        "Content-Type": "application/octet-stream",
        "Expect": "100-continue",
    }

    def invited() -> RawClient | None:
        client = RawClient(url, "/api/img2img", size, headers)
        answer = client.answer(interim=True)
        if answer is not None and answer.status == 100:
            return client
        client.close()
        return None

    first = invited()  # the earlier tests' bodies (408s, 401s) left no bytes counted
    assert first is not None
    second = RawClient(url, "/api/img2img", size, headers)
    full = second.answer()
    second.close()
    first.send(b"x" * size)  # the first completes: Django answers it
    completed = first.answer(timeout=10)
    first.close()
    dropped = invited()  # room again; this one hangs up half-way
    assert dropped is not None
    dropped.send(b"x" * 1000)
    dropped.close()
    time.sleep(0.3)
    last = invited()
    assert last is not None  # the dropped body's bytes are free again
    last.close()
    time.sleep(0.3)
    after = spool_files(pid)
    print(
        f"spool cap {SPOOL_CAP // 1024 // 1024} MB: a second 2 MB body {full and full.status} "
        f"(Retry-After {full and full.headers.get('retry-after')}), the first answered "
        f"{completed and completed.status}, then admitted again after an answer and after a "
        f"dropped connection; spool files before {before}, after {after}"
    )
    assert full is not None and full.status == 503 and int(full.headers["retry-after"]) > 0
    assert full.json()["status"] == "error"
    assert completed is not None and completed.status not in (401, 408, 429, 503)
    assert after <= before
