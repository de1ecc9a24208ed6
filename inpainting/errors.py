"""The one family of client mistakes: every 4xx a service, an upload check or the URL
fetcher raises is a ``ClientError`` with the message, the field at fault (named where the
mistake is found) and the status (also the 503 of a request no live worker can run). The
API's exception handler turns it into the one error shape; no view or service translates one
error class into another."""

from __future__ import annotations


class ClientError(Exception):
    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        #: Seconds after which the same request may succeed (a 429 or 503): ``Retry-After``.
        self.retry_after = retry_after


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
