"""The one family of client mistakes: every 4xx the engine, a service, an upload check or the
URL fetcher raises is a ``ClientError`` (``engine.types``: the engine's ``InvalidInput`` is
one) with the message, the field at fault (named where the mistake is found) and the status
(also the 503 of a request no live worker can run). The API's exception handler turns it into
the one error shape; no view or service translates one error class into another."""

from __future__ import annotations

from .engine.types import ClientError

__all__ = ["ClientError", "RemoteInputError", "UploadError", "cut", "echoed"]


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
