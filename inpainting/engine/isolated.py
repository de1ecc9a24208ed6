"""Work that a cancel can stop at any moment: run in a helper process the caller can end.

A classical fill spends its time in C (PatchMatch, a sparse solve) and cannot be interrupted
from Python: a cancel checked between samples waited for it, minutes on a hostile mask. Here
each process that fills keeps one helper process (``python -m inpainting.engine.helper``,
started once, the engine imported there once), hands it each call through a pipe, and polls
its cancel check while it waits; a cancel kills the helper, so the worker is free within
``POLL_SECONDS``, and the next call starts a new helper (about a second). The arguments and the
result are pickled across the pipe (a 4096 x 4096 photo: 48 MB, about 0.1 s each way).

The helper is a plain subprocess, not a ``multiprocessing`` child: Celery's prefork pool
marks its worker processes daemonic (``multiprocessing`` refuses them children) and replaces
their authentication key with one that cannot be pickled to a fork server.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .types import Cancelled, EngineError

#: How often the caller looks at its cancel check while the helper works.
POLL_SECONDS = 0.2
#: The helper runs from the folder that holds the ``inpainting`` package, whatever the cwd.
_ROOT = Path(__file__).resolve().parents[2]
_LENGTH = struct.Struct(">Q")

T = TypeVar("T")


def write(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) < size:
        raise EOFError
    return data


def read(stream: BinaryIO) -> Any:
    (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return pickle.loads(_read_exactly(stream, size))  # noqa: S301 - our own helper's answer


class _Helper:
    """The helper process of this process (one call at a time)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._owner = os.getpid()
        self._lock = threading.Lock()

    def _running(self) -> subprocess.Popen:
        if self._owner != os.getpid():  # a forked child: the helper is its parent's
            self._process, self._owner = None, os.getpid()
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "inpainting.engine.helper"],
                cwd=_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
        return self._process

    def start(self) -> None:
        with self._lock:
            self._running()

    def _end(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def call(self, function: Callable[..., T], args: tuple, kwargs: dict, is_cancelled) -> T:
        with self._lock:
            process = self._running()
            try:
                write(process.stdin, (function, args, kwargs))
                while not select.select([process.stdout], [], [], POLL_SECONDS)[0]:
                    if is_cancelled():
                        raise Cancelled()
                ok, value = read(process.stdout)
            except (EOFError, BrokenPipeError):
                code = process.wait()  # it closed the pipe: it is ending
                self._process = None
                raise EngineError(
                    f"The fill process ended without a result (exit code {code}); the machine "
                    "may be out of memory."
                ) from None
            except BaseException:
                # Cancelled, or anything else that stops the wait (a time limit, the cancel
                # check's database gone): the helper's answer would answer the next call.
                self._end()
                self._running()  # the next call's helper starts now
                raise
        if not ok:
            raise value
        return value


_HELPER = _Helper()


def warm() -> None:
    """Start this process' helper now (it imports the engine: about a second), not on a first
    job; returns at once."""
    _HELPER.start()


def run_cancellable(
    function: Callable[..., T], *args: Any, is_cancelled: Callable[[], bool], **kwargs: Any
) -> T:
    """``function(*args, **kwargs)`` (a module-level function) in the helper process;
    ``Cancelled`` as soon as ``is_cancelled()`` says so (the helper is killed), ``EngineError``
    if the helper dies or the function raises."""
    return _HELPER.call(function, args, kwargs, is_cancelled)
