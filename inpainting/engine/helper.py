"""The helper process of ``isolated``: ``python -m inpainting.engine.helper``. It reads a
call from stdin, answers ``(True, result)`` or ``(False, EngineError)`` on stdout, until the
caller closes the pipe; anything a library prints goes to stderr, not the pipe."""

from __future__ import annotations

import os
import sys

from . import infill  # noqa: F401 - the fills imported before the first call
from .isolated import read, write
from .types import EngineError


def serve() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    while True:
        try:
            function, args, kwargs = read(requests)
        except EOFError:
            return
        try:
            outcome = (True, function(*args, **kwargs))
        except EngineError as exc:
            outcome = (False, EngineError(str(exc)))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
            outcome = (False, EngineError(f"The fill failed: {type(exc).__name__}: {exc}"))
        write(answers, outcome)


if __name__ == "__main__":
    serve()
