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
- A connection must send its request's head (the request line and headers) within
  ``HEADER_TIMEOUT_SECONDS`` of opening, or it is closed: a client that trickles a byte every
  few seconds resets Twisted's idle timeout for ever and holds a connection (3,000 such
  connections stayed open for 70 s). Later requests on a kept-alive connection have the same
  limit from the end of the previous one.
- Request bodies are capped at ``REQUEST_MAX_BYTES`` before anything else looks at them:
  daphne otherwise receives a whole body (into a temporary file, then into its queue to the
  application, in memory) before Django or authentication sees the request. A declared
  ``Content-Length`` over the cap is answered 413 at once; a body without one (chunked) is cut
  off with a 413 as soon as it passes the cap. Either way the connection is closed.
"""

import json

from daphne import cli, http_protocol, server
from daphne.access import AccessLogGenerator
from django.conf import settings
from twisted.internet import reactor

from accounts.keyformat import redact


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs) -> None:
        super().write_entry(host, date, redact(request), *args, **kwargs)


#: Seconds a connection has to send a request's head.
HEADER_TIMEOUT_SECONDS = 10.0


def _head_deadline(channel) -> None:
    """Close ``channel`` unless a request head arrives within HEADER_TIMEOUT_SECONDS."""
    _cancel_head_deadline(channel)
    channel._head_deadline = reactor.callLater(
        HEADER_TIMEOUT_SECONDS, channel.transport.loseConnection
    )


def _cancel_head_deadline(channel) -> None:
    deadline = getattr(channel, "_head_deadline", None)
    if deadline is not None and deadline.active():
        deadline.cancel()


class HeadTimedFactory(http_protocol.HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        made, lost = protocol.connectionMade, protocol.connectionLost

        def connection_made() -> None:
            made()
            _head_deadline(protocol._channel)

        def connection_lost(reason) -> None:
            _cancel_head_deadline(protocol._channel)
            lost(reason)

        protocol.connectionMade, protocol.connectionLost = connection_made, connection_lost
        return protocol


class BodyLeftToDjangoRequest(http_protocol.WebRequest):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self._received = 0
        self._refused = False

    def finish(self) -> None:
        channel = self.channel
        super().finish()
        if channel is not None and channel.transport is not None:
            _head_deadline(channel)  # the next request on this connection

    def gotLength(self, length) -> None:
        _cancel_head_deadline(self.channel)  # the head is in
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
    server.HTTPFactory = HeadTimedFactory  # the factory daphne's server listens with
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
