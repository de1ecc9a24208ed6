"""The web process works on a budget (issue 51, docs/adr/0011-the-web-budget.md): pixel work
answered where the request is (A1111's extras, the mask preview, a link's format) passes one
bounded gate, so parallel requests cannot grow a real daphne process without bound.

Measured here (run with ``-s``): the process' peak resident memory above its start, sampled
every 10 ms while the attack runs; the figures are quoted in docs/reliability-and-security.md.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from django.conf import settings
from PIL import Image

from tests.conftest import child_env
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = child_env(WEB_PIXEL_WAIT_SECONDS="2", ANSWER_STALL_SECONDS="3")
    log = Path(settings.DATA_DIR) / "daphne-budget.log"
    with daphne_server(env, log) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = next(c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.pid)
        yield url, psutil.Process(pid)


class PeakMemory:
    """The peak resident memory of ``process`` above where it started, sampled every 10 ms."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.start = process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / MB


def photo_like_png(side: int) -> bytes:
    """A ``side`` px picture with smooth colour and some fine texture, as PNG (about 1 MB at
    4096 px: under the upload limit, and its 8192 px upscale does not compress to nothing)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    red = np.broadcast_to(ramp[None, :], (side, side))
    green = np.broadcast_to(ramp[:, None], (side, side))
    blue = ((np.arange(side)[:, None] // 64 + np.arange(side)[None, :] // 64) % 2) * 200.0
    pixels = np.stack([red, green, np.broadcast_to(blue, (side, side))], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def test_four_parallel_extras_to_8192_px_stay_within_the_web_budget(server, api_key):
    """Four concurrent ``extra-single-image`` of a 4096 px picture to 8192 px (before: +3.4 GB
    peak, 2 GB kept; 20 of them killed the process): the process grows at most 1.5 GB, at
    least one answers 200 with the 8192 px picture, and the others wait or are told when to
    come back (429/503 with Retry-After)."""
    url, process = server
    body = {
        "image": base64.b64encode(photo_like_png(4096)).decode(),
        "upscaling_resize": 2,
        "upscaler_1": "Lanczos",
    }
    auth = ("me", api_key)
    requests.get(f"{url}/api/health", timeout=10)

    def extras(_) -> requests.Response:
        return requests.post(
            f"{url}/sdapi/v1/extra-single-image", json=body, auth=auth, timeout=300
        )

    started = time.monotonic()
    with PeakMemory(process) as memory, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(extras, range(4)))
    seconds = time.monotonic() - started
    time.sleep(1.0)
    kept = (process.memory_info().rss - memory.start) / MB
    codes = sorted(answer.status_code for answer in answers)
    print(
        f"\n4 x extras 4096 -> 8192 px: answers {codes} in {seconds:.1f} s; daphne peak "
        f"+{memory.growth_mb:.0f} MB, +{kept:.0f} MB kept 1 s after"
    )
    assert memory.growth_mb <= 1536
    assert 200 in codes
    for answer in answers:
        if answer.status_code == 200:
            with Image.open(io.BytesIO(base64.b64decode(answer.json()["image"]))) as picture:
                assert picture.size == (8192, 8192)
        else:
            assert answer.status_code in (429, 503), answer.text[:300]
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["detail"]  # A1111's error shape, with the reason


def extras_head(url: str, api_key: str, body: bytes) -> bytes:
    host = url.removeprefix("http://")
    token = base64.b64encode(f"me:{api_key}".encode()).decode()
    return (
        f"POST /sdapi/v1/extra-single-image HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


def raw_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_a_client_that_goes_away_or_never_reads_lets_go_of_the_gate(server, api_key):
    """An 8192 px upscale whose client hangs up while it is made, and one whose client never
    reads its 270 MB answer: neither keeps the gate's ticket nor the answer (the next such
    request from the same user is answered 200, not a 429 or a 503), and the process does not
    hold the unread answer (before: Twisted buffered every answer whole, and a client gone
    mid-upscale kept its ticket for good)."""
    url, process = server
    body = json.dumps(
        {
            "image": base64.b64encode(photo_like_png(4096)).decode(),
            "upscaling_resize": 2,
            "upscaler_1": "Lanczos",
        }
    ).encode()
    auth = ("me", api_key)
    memory = PeakMemory(process)
    with memory:
        gone = raw_socket(url)  # hangs up while its picture is being made
        gone.sendall(extras_head(url, api_key, body) + body)
        time.sleep(0.5)
        gone.close()
        silent = raw_socket(url)  # never reads its answer
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        silent.sendall(extras_head(url, api_key, body) + body)
        started = time.monotonic()
        after = None
        while time.monotonic() - started < 60:
            after = requests.post(
                f"{url}/sdapi/v1/extra-single-image",
                data=body,
                auth=auth,
                timeout=300,
                headers={"Content-Type": "application/json"},
            )
            if after.status_code == 200:
                break
            time.sleep(1.0)
        seconds = time.monotonic() - started
        silent.close()
    print(
        f"\nextras whose client left, then one never read: the next answered "
        f"{after.status_code} after {seconds:.1f} s; daphne peak +{memory.growth_mb:.0f} MB"
    )
    assert after.status_code == 200, after.text[:300]
    assert seconds < 30  # the unread answer's stall (3 s here) and two upscales, not for ever
    assert memory.growth_mb <= 1536  # the unread 270 MB answer is not held whole besides


def random_mask_png(side: int) -> bytes:
    """A ``side`` px mask of random black and white pixels (the attack's worst case for the
    blur and the grow: an edge at every pixel)."""
    bits = np.random.default_rng(51).integers(0, 2, (side, side), dtype=np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(bits, "L").save(buffer, "PNG")
    return buffer.getvalue()


def test_parallel_mask_previews_of_a_random_4096_px_mask_leave_the_site_answering(server, api_key):
    """Finding 7: ``POST /api/masks/effective`` with a 4096 px random mask, blur and grow 64
    cost 3.5 s of web CPU each, unbounded in number. Four at once from one key: at least one
    is answered with the preview, the others wait their turn or are told when to come back,
    and ``/api/health`` answers meanwhile."""
    url, process = server
    mask = random_mask_png(4096)
    headers = {"Authorization": f"Api-Key {api_key}"}
    fields = {"width": 4096, "height": 4096, "mask_blur": 64, "mask_grow": 64}
    requests.get(f"{url}/api/health", timeout=10)

    def preview(_) -> requests.Response:
        return requests.post(
            f"{url}/api/masks/effective",
            files={"mask": ("m.png", mask)},
            data=fields,
            headers=headers,
            timeout=120,
        )

    health, done = [], threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            assert requests.get(f"{url}/api/health", timeout=30).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    cpu = process.cpu_times()
    started = time.monotonic()
    with PeakMemory(process) as memory, ThreadPoolExecutor(4) as pool:
        prober.start()
        answers = list(pool.map(preview, range(4)))
        done.set()
        prober.join()
    seconds = time.monotonic() - started
    used = process.cpu_times()
    cpu_seconds = used.user + used.system - cpu.user - cpu.system
    codes = sorted(answer.status_code for answer in answers)
    print(
        f"\n4 x masks/effective 4096 px random mask, blur 64, grow 64: answers {codes} in "
        f"{seconds:.1f} s, daphne {cpu_seconds:.1f} s CPU, peak +{memory.growth_mb:.0f} MB; "
        f"/api/health {len(health)} times meanwhile, slowest {max(health):.2f} s"
    )
    assert 200 in codes
    for answer in answers:
        if answer.status_code == 200:
            with Image.open(io.BytesIO(answer.content)) as picture:
                assert picture.size == (4096, 4096)
        else:
            assert answer.status_code in (429, 503), answer.text[:300]
            assert int(answer.headers["Retry-After"]) >= 1
    assert health and max(health) < 2.0
    assert memory.growth_mb <= 1536
