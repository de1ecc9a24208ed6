"""``python -m dreamlayer_site.serve``: daphne's own command line, with two changes.

- The access log never writes an API key (a key pasted into a URL by mistake is logged as
  ``dl_xxxxxxxx.[redacted]``), nor an image link (``/v1/images/files/[redacted]``: the link
  is a capability, ADR 7). Websocket paths are logged without their query string by
  daphne itself, so the ``?api_key=`` a browser-less client may put on the handshake is never
  written either.
- Twisted does not parse multipart bodies. Its ``Request`` parses every multipart POST with
  the ``email`` package into ``request.args``, which daphne never reads; Django parses the body
  again. Skipping it saves about 25 ms on a 600 KB upload (``bench/overhead.py``), and a
  malformed body gets Django's 400 with a message instead of Twisted's bare one.
- Request bodies are capped at ``REQUEST_MAX_BYTES`` before anything else looks at them:
  daphne otherwise receives a whole body (into a temporary file, then into its queue to the
  application, in memory) before Django or authentication sees the request. A declared
  ``Content-Length`` over the cap is answered 413 at once; a body without one (chunked) is cut
  off with a 413 as soon as it passes the cap. Either way the connection is closed.
"""

import json

from daphne import cli, http_protocol
from daphne.access import AccessLogGenerator
from django.conf import settings

from accounts.keyformat import redact


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


class BodyLeftToDjangoRequest(http_protocol.WebRequest):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self._received = 0
        self._refused = False

    def gotLength(self, length) -> None:
        super().gotLength(length)
        if length is not None and length > settings.REQUEST_MAX_BYTES:
            self._refuse()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > settings.REQUEST_MAX_BYTES:
            self._refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        if not self._refused:
            super().process()

    def _refuse(self) -> None:
        """413 in the API's error shape, then close: the rest of the body is never read."""
        self._refused = True
        limit = settings.REQUEST_MAX_BYTES
        message = f"The request body is larger than {limit / (1024 * 1024):g} MB."
        body = json.dumps({"status": "error", "message": message, "errors": {}}).encode()
        head = (
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.channel.transport.write(head.encode() + body)
        self.channel.transport.loseConnection()


def main() -> None:
    cli.AccessLogGenerator = RedactingAccessLog  # the class daphne's CLI instantiates
    http_protocol.WebRequest = BodyLeftToDjangoRequest  # the class daphne's factory builds
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
