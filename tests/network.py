"""Forbid the network in a test: any socket connection to a non-loopback address fails the
test (loading a model must never reach the Hugging Face Hub or anything else)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket

import pytest


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):  # a Unix socket path
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: it would be resolved and reached


@contextlib.contextmanager
def network_forbidden(monkeypatch: pytest.MonkeyPatch):
    """Within the block, a connection (or a name lookup) for a non-loopback address raises,
    and the attempts are listed in the yielded list, so a swallowed error still fails."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if self.family == socket.AF_UNIX or _loopback(address):
            return real_connect(self, address)
        attempts.append(f"connect {address!r}")
        raise OSError(f"network forbidden in this test: {address!r}")

    def getaddrinfo(host, *args, **kwargs):
        if _loopback((host,)):
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(f"getaddrinfo {host!r}")
        raise socket.gaierror(f"network forbidden in this test: {host!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    monkeypatch.undo()
