"""Round two of the URL rules (issue 14): the forms that once reached loopback, DNS rebinding,
and a slow drip. A loopback listener counts every connection that reaches it: 0 is the bar.

Every endpoint that takes a URL is attacked: ModelsLab ``init_image`` and ``webhook``,
FooocusAPI ``generate_mask`` and ``webhook_url``, deep-image ``url``, native ``webhook_url``.
"""

from __future__ import annotations

import base64
import socket
import threading
import time

import pytest

from inpainting import remote
from inpainting.remote import RemoteInputError, fetch_url
from inpainting.services import webhooks
from tests.helpers import black_box_mask_png, image_png, post_img2img

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"  # a public address (no connection to it succeeds in the tests)


class CountingListener:
    """A TCP listener on loopback that accepts, counts and drops every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    server = CountingListener()
    yield server
    time.sleep(0.1)  # a connection in flight would be counted before the assertion reads it
    server.close()


def attack_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}\\@{PUBLIC}/x.png",  # urlsplit sees the public host
        f"http://127.0.0.1:{port}\\\\@{PUBLIC}/x.png",
        f"http://{PUBLIC}@127.0.0.1:{port}/x.png",  # userinfo
        f"http://user:pass@127.0.0.1:{port}/x.png",
        f"http://127.0.0.1:{port}/x.png",
        f"http://localhost:{port}/x.png",
        f"http://[::ffff:127.0.0.1]:{port}/x.png",  # IPv4-mapped IPv6
        f"http://0.0.0.0:{port}/x.png",
        f"http://2130706433:{port}/x.png",  # 127.0.0.1 as one decimal number
        f"http://127.1:{port}/x.png",
        f"http://127.0.0.1:{port} @{PUBLIC}/x.png",
        f"http://127.0.0.1:{port}\t@{PUBLIC}/x.png",
        f"HTTP://127.0.0.1:{port}/x.png",
    ]


def test_every_attack_form_is_refused_without_a_connection(listener):
    for url in attack_urls(listener.port):
        with pytest.raises(RemoteInputError) as caught:
            fetch_url(url, field="init_image")
        message = caught.value.message
        assert any(
            words in message
            for words in ("backslash", "user name", "private or local", "cannot be resolved")
        ), (url, message)
    assert listener.count == 0


def _modelslab(client, api_key, **fields):
    body = {
        "key": api_key,
        "init_image": base64.b64encode(image_png()).decode(),
        "mask_image": base64.b64encode(black_box_mask_png()).decode(),
        "prompt": "x",
        **fields,
    }
    return client.post("/api/v6/images/inpaint", body, content_type="application/json")


def _fooocus_mask(client, api_key, url):
    return client.post(
        "/v1/tools/generate_mask",
        {"image": url},
        content_type="application/json",
        headers={"X-API-KEY": api_key},
    )


def _fooocus_generate(client, api_key, **fields):
    body = {
        "prompt": "x",
        "inpaint_input_image": base64.b64encode(image_png()).decode(),
        "inpaint_mask_image_upload": base64.b64encode(black_box_mask_png()).decode(),
        **fields,
    }
    return client.post(
        "/v1/engine/generate", body, content_type="application/json", headers={"X-API-KEY": api_key}
    )


def _deepimage(client, api_key, url):
    body = {"url": url, "width": 64, "height": 64, "fit": {"canvas": "outpainting"}}
    return client.post(
        "/rest_api/process_result",
        body,
        content_type="application/json",
        headers={"x-api-key": api_key},
    )


def _native_webhook(client, api_key, url):
    return post_img2img(
        client,
        image_png(),
        black_box_mask_png(),
        headers={"Authorization": f"Api-Key {api_key}"},
        webhook_url=url,
        wait="false",
    )


def test_every_url_field_of_every_endpoint_refuses_the_bypass(client, api_key, listener):
    from inpainting.models import Generation

    calls = {
        "modelslab init_image": lambda url: _modelslab(client, api_key, init_image=url),
        "modelslab webhook": lambda url: _modelslab(client, api_key, webhook=url),
        "fooocus generate_mask": lambda url: _fooocus_mask(client, api_key, url),
        "fooocus webhook_url": lambda url: _fooocus_generate(client, api_key, webhook_url=url),
        "deep-image url": lambda url: _deepimage(client, api_key, url),
        "native webhook_url": lambda url: _native_webhook(client, api_key, url),
    }
    for name, call in calls.items():
        for url in attack_urls(listener.port)[:4]:
            response = call(url)
            assert response.status_code == 400, (name, url, response.content[:300])
            body = response.json()
            assert body["status"] == "error" and body["errors"], (name, body)
    assert listener.count == 0
    assert not Generation.objects.exists()  # nothing was queued with such a URL


def test_the_a1111_image_fields_refuse_the_bypass_in_a1111s_shape(client, api_key, listener):
    """AUTOMATIC1111's ``init_images``, ``mask`` and png-info's ``image`` take URLs too (as
    A1111 does with ``api_enable_requests``): through the same fetcher."""
    from inpainting.models import Generation

    auth = {"Authorization": "Basic " + base64.b64encode(f"me:{api_key}".encode()).decode()}
    image = base64.b64encode(image_png()).decode()
    calls = {
        "init_images": lambda url: {"init_images": [url], "prompt": "x"},
        "mask": lambda url: {"init_images": [image], "mask": url, "prompt": "x"},
    }
    for url in attack_urls(listener.port)[:4]:
        for field, body in calls.items():
            response = client.post(
                "/sdapi/v1/img2img", body(url), content_type="application/json", headers=auth
            )
            assert response.status_code == 400, (field, url, response.content[:300])
            assert field in response.json()["errors"] and response.json()["detail"]
        response = client.post(
            "/sdapi/v1/png-info", {"image": url}, content_type="application/json", headers=auth
        )
        assert response.status_code == 400 and "image" in response.json()["errors"]
    assert listener.count == 0
    assert not Generation.objects.exists()


def _rebinding_resolver(monkeypatch, answers: list[str]):
    """getaddrinfo that answers ``answers[0]`` first, then ``answers[1]`` for ever after."""
    calls = []
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = answers[min(len(calls), len(answers) - 1)]
        calls.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(remote.socket, "getaddrinfo", resolve)
    return calls


@pytest.mark.serial  # measures time
def test_a_rebinding_resolver_is_asked_once_and_its_public_answer_is_the_one_connected(
    listener, monkeypatch, settings
):
    settings.URL_FETCH_TIMEOUT = 1.0
    calls = _rebinding_resolver(monkeypatch, [PUBLIC, "127.0.0.1"])
    started = time.monotonic()
    with pytest.raises(RemoteInputError, match="could not be fetched|within 1 s"):
        fetch_url(f"http://rebind.example:{listener.port}/x.png", field="init_image")
    assert calls == [PUBLIC]  # one question; the connection went to that answer
    assert listener.count == 0
    assert time.monotonic() - started < 3


def test_a_webhook_is_sent_to_the_address_checked_at_sending_time(
    listener, monkeypatch, settings, user
):
    """Checked at submission (public), rebound to loopback by the time it is sent: refused."""
    from inpainting.models import Generation, SourceImage

    calls = _rebinding_resolver(monkeypatch, [PUBLIC, "127.0.0.1"])
    url = f"http://rebind.example:{listener.port}/hook"
    webhooks.validate_url(url)  # what submission does: passes, the name looks public
    source = SourceImage.objects.create(owner=user, width=1, height=1, sha256="0" * 64)
    generation = Generation.objects.create(
        owner=user,
        source=source,
        engine="classical",
        status="succeeded",
        webhook_url=url,
        webhook_status="pending",
    )
    assert webhooks.deliver(generation_id=str(generation.pk)) is webhooks.Attempt.GAVE_UP
    generation.refresh_from_db()
    assert "private or local" in generation.webhook_error
    assert calls == [PUBLIC, "127.0.0.1"] and listener.count == 0


class DripServer:
    """Answers 200 with a 10 kB body, then sends it one byte every ``interval`` seconds."""

    def __init__(self, interval: float, headers_too: bool = False) -> None:
        self.interval, self.headers_too = interval, headers_too
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000\r\n\r\n"
        try:
            conn.recv(65536)
            if self.headers_too:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            else:
                conn.sendall(head)
            for _ in range(10000):
                conn.sendall(b"\x00")
                time.sleep(self.interval)
        except OSError:
            pass
        finally:
            conn.close()


@pytest.mark.serial  # measures time
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status line and headers"])
def test_a_slow_drip_is_cut_off_at_the_total_time_limit(settings, headers_too):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    settings.URL_FETCH_TIMEOUT = 1.0
    server = DripServer(interval=0.05, headers_too=headers_too)
    started = time.monotonic()
    with pytest.raises(RemoteInputError, match="did not answer in full within 1 s"):
        fetch_url(f"http://127.0.0.1:{server.port}/slow.png", field="init_image")
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, elapsed  # each byte came well within any per-read timeout
    server.sock.close()


def test_error_messages_do_not_tell_open_ports_from_closed_ones(settings, listener):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    settings.URL_FETCH_TIMEOUT = 1.0
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    messages = set()
    for port in (listener.port, closed_port):  # open (drops the connection) and closed
        with pytest.raises(RemoteInputError) as caught:
            fetch_url(f"http://127.0.0.1:{port}/x.png", field="init_image")
        messages.add(caught.value.message)
    assert messages == {"The init_image URL could not be fetched."}
