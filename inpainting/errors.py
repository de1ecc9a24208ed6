"""The one family of client mistakes: every 4xx a service, an upload check or the URL
fetcher raises is a ``ClientError`` with the message, the field at fault (named where the
mistake is found) and the status (also the 503 of a request no live worker can run). The
API's exception handler turns it into the one error shape; no view or service translates one
error class into another."""

from __future__ import annotations


class ClientError(Exception):
    status = 400

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status


class UploadError(ClientError):
    """An uploaded (or fetched) file that is not an acceptable image."""


class RemoteInputError(ClientError):
    """A URL or base64 input that cannot be used."""
