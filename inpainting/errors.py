"""The one family of client mistakes: every 4xx the engine, a service, an upload check or the
URL fetcher raises is a ``ClientError`` (``engine.types``: the engine's ``InvalidInput`` is
one) with the message, the field at fault (named where the mistake is found) and the status
(also the 503 of a request no live worker can run). The API's exception handler turns it into
the one error shape; no view or service translates one error class into another."""

from __future__ import annotations

import re

from .engine.types import ClientError

__all__ = ["ClientError", "RemoteInputError", "UploadError", "cut", "echoed", "without_paths"]


class UploadError(ClientError):
    """An uploaded (or fetched) file that is not an acceptable image."""


class RemoteInputError(ClientError):
    """A URL or base64 input that cannot be used."""


#: A name a client sent that a message repeats (an unknown model, scheduler, script, size) is
#: cut to this length: an answer never grows with what the client sent.
MAX_ECHOED_NAME = 64


def cut(value: object) -> str:
    """``value`` as text, cut to MAX_ECHOED_NAME characters (an ellipsis says it was)."""
    text = str(value)
    return text[:MAX_ECHOED_NAME] + "…" if len(text) > MAX_ECHOED_NAME else text


def echoed(value: object) -> str:
    """``value`` as a message quotes it (``repr``), cut to MAX_ECHOED_NAME characters."""
    return repr(cut(value))


#: An absolute path of this server's disk within a text (not a URL's path: a path after a
#: host, a scheme or another slash is left).
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.+~-]+/)*([\w.+~-]+)")


def without_paths(text: str) -> str:
    """A text for an ordinary user or an anonymous caller: each absolute path of the server's
    disk it holds (a model's load error, a worker's note) as its last name only. The
    operator's details (where a file is, what to copy where) are for staff."""
    return _SERVER_PATH.sub(lambda found: found.group(1), text)
