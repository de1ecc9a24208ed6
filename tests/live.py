"""Helpers for tests that start real server processes."""

from __future__ import annotations

import contextlib
import ctypes
import http.server
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import image_png

ROOT = Path(__file__).resolve().parent.parent


#: prctl's option that sends the child a signal when the thread that started it ends (Linux).
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of a server process a test starts (a Celery worker, daphne): SIGTERM
    when the test process ends, however it ends. An xdist worker killed by pytest-timeout
    (``os._exit``) runs no fixture's teardown: its Celery workers lived on, took the next
    run's jobs from the shared Redis and failed them ("model not on this worker's disk").
    Started from the main thread (fixtures run there), as the signal follows the thread."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: ``make check`` sets this: the fast lane runs no live stack (tests/conftest.py marks the
#: tests that need one ``stack`` and deselects them there).
FAST_LANE = "DREAMLAYER_FAST_LANE"


def refuse_in_fast_lane(what: str) -> None:
    """A test in the fast lane that starts ``what`` needs the ``stack`` mark (conftest)."""
    if os.environ.get(FAST_LANE):
        raise RuntimeError(
            f"This test starts {what}: add its module to STACK_MODULES in tests/conftest.py "
            "(or use a stack fixture), so that make check leaves it to make test."
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process, timeout: float = 90.0, log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited early:\n{log.read_text()[-4000:] if log else ''}"
            )
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-4000:] if log else ''}")


@contextlib.contextmanager
def daphne_server(env: dict[str, str], log: Path, *args: str):
    """A daphne process serving the project with ``env``; yields its base URL."""
    refuse_in_fast_lane("a daphne server")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dreamlayer_site.serve",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *args,
            "dreamlayer_site.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/api/health", process, log=log)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def run_script(script: str, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """Run one of the repository's scripts (``bench/…``, ``scripts/…``) and capture its output."""
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def script_against_server(
    env: dict[str, str], log: Path, script: str, *args: str
) -> subprocess.CompletedProcess:
    """Start daphne with ``env``, run ``script --url URL *args`` against it and return the run."""
    with daphne_server(env, log) as url:
        return run_script(script, "--url", url, *args)


PNG = image_png()


class Handler(http.server.BaseHTTPRequestHandler):
    extra: dict[str, bytes] = {}  # more files to serve (other tests add theirs)

    def do_GET(self):
        if self.path in self.extra:
            body = self.extra[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        routes = {
            "/image.png": (200, {"Content-Type": "image/png"}, PNG),
            "/redirect-ok": (302, {"Location": "/image.png"}, b""),
            "/redirect-private": (302, {"Location": "http://169.254.169.254/latest/"}, b""),
            "/redirect-file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/big": (200, {}, b"\x00" * (10 * 1024 * 1024 + 10)),
        }
        status, headers, body = routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
