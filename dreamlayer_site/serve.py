"""``python -m dreamlayer_site.serve``: daphne's own command line, with these changes.

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
  limit from the end of the previous one; it runs until the head's credentials are checked.
- Request bodies are capped at ``REQUEST_MAX_BYTES`` before anything else looks at them:
  daphne otherwise receives a whole body (into a temporary file, then into its queue to the
  application, in memory) before Django or authentication sees the request. A declared
  ``Content-Length`` over the cap is answered 413 at once; a body without one (chunked) is cut
  off with a 413 as soon as it passes the cap. Either way the connection is closed.
- Credentials before the body: a body that may be larger than ``ANONYMOUS_BODY_MAX_BYTES`` (a
  larger ``Content-Length``, or a chunked body) is read only once the head brought valid
  credentials (``accounts.authentication.user_from_head``: an API key in a header, HTTP Basic
  or the ``/k/<key>/`` path, or a logged-in session cookie), checked on a thread while the
  connection is paused, so not a byte of the body is read meanwhile; else a 401 (a 429 once
  the address sent too many wrong keys) and the connection is closed. 20 anonymous clients
  trickling 20 MB bodies held 566 MB of temporary files for minutes before this. The one
  exception is the routes that read their key from the JSON body (ModelsLab's,
  ``BodyKeyAuthentication``): anonymous bodies there are read up to ``REQUEST_MAX_BYTES``,
  ``ANONYMOUS_BODIES_PER_ADDRESS`` at once per client address (a 429 past it), and none from
  an address the wrong-key throttle holds (a 429 before the body is read); the key is then
  found by a bounded scan of the body's start, not by parsing it.
- A body must keep arriving: at least ``REQUEST_BODY_MIN_BYTES_PER_WINDOW`` in every
  ``REQUEST_BODY_WINDOW_SECONDS``, all of it within ``REQUEST_BODY_MAX_SECONDS``, or a 408,
  the connection closed and the spooled part freed at once.
- The bodies one process receives at once are bounded: their bytes (declared lengths, or
  what arrived of chunked ones) stay under ``REQUEST_BODIES_MAX_BYTES``, counted from the head
  until the answer is sent; a body that would pass it gets a 503 before it is read.

Every refusal here has the API's error shape and ``Connection: close``; the 429s and the 503
say ``Retry-After``.
- Answers are paced by their reader: daphne writes what the application sends into Twisted's
  buffer at once, so a client that reads slowly (or not at all) made the web process hold a
  whole answer (a 270 MB A1111 upscale). Once a connection has ``ANSWER_BUFFER_BYTES`` unsent,
  the application's next piece waits until the client has taken some; a connection whose
  answer makes no progress for ``ANSWER_STALL_SECONDS`` is cut, and the application is told
  the client went away (a streamed answer stops, and lets go of what it held). A reader
  slower than ``ANSWER_MIN_BYTES_PER_WINDOW`` in a ``REQUEST_BODY_WINDOW_SECONDS`` window,
  measured while the answer waits for it, is cut the same way: a client that reads 64 KB a
  second held a 197 MB answer for 70 minutes.
"""

import asyncio
import json
import logging
import math
import os
import sys
from collections import Counter
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import unquote

import django
from daphne import cli, http_protocol, server
from daphne.access import AccessLogGenerator
from daphne.utils import parse_x_forwarded_for
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from rest_framework import exceptions
from twisted.internet import reactor, threads

from accounts.keyformat import KEY_IN_PATH, redact

# The head's credentials are looked up in the database: the apps are loaded before the modules
# that need them are imported (daphne's command line loads them only with the application).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dreamlayer_site.settings")
if __name__ == "__main__":  # the web server itself, not a process that imports this module
    os.environ["DREAMLAYER_WEB_PROCESS"] = "1"  # its database connections pooled (settings)
if not apps.ready:  # a test process that imports this module has loaded them already
    django.setup(set_prefix=False)

from accounts.authentication import NO_KEY_MESSAGE, user_from_head  # noqa: E402
from accounts.throttles import KEY_FAILURES, wait_words  # noqa: E402
from inpainting.api.compat.modelslab import BodyKeyAuthentication  # noqa: E402
from inpainting.api.errors import error_body, not_found_body  # noqa: E402

logger = logging.getLogger(__name__)


#: The access log's level: a request is a line at INFO (``LOG_LEVEL=INFO``), none at the
#: default WARNING of ``make run`` (its printed credentials would scroll away); an access log
#: asked for by name (``--access-log FILE``) is always written.
ACCESS_LOG = logging.getLogger("dreamlayer.access")


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs) -> None:
        if ACCESS_LOG.isEnabledFor(logging.INFO):
            super().write_entry(host, date, redact(request), *args, **kwargs)


#: Seconds a connection has to send a request's head.
HEADER_TIMEOUT_SECONDS = 10.0
#: Bytes of an answer one connection may hold unsent before the application's next piece
#: waits for the client to read (how long an answer may make no progress before its connection
#: is cut: ANSWER_STALL_SECONDS).
ANSWER_BUFFER_BYTES = 4 * 1024 * 1024


def _unsent(transport) -> int:
    """Bytes a Twisted transport holds that its socket has not taken yet."""
    buffered = getattr(transport, "dataBuffer", b"")
    return len(buffered) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


class AnswerPacedServer(server.Server):
    """Daphne's server, whose HTTP answers wait for their reader (see the module's doc)."""

    async def handle_reply(self, protocol, message) -> None:
        await super().handle_reply(protocol, message)
        channel = getattr(protocol, "channel", None)
        if message.get("type") == "http.response.start" and channel is not None:
            channel._answer_pace = None  # a new answer on this connection
        if message.get("type") != "http.response.body" or not message.get("more_body"):
            return
        transport = getattr(channel, "transport", None)
        if transport is None:
            return
        loop = asyncio.get_running_loop()
        # The reader's pace: the bytes it took (written less unsent) in each window, judged at
        # a window's end while the answer waits for it (a slow application is not the
        # reader's fault). Kept on the channel from one piece to the next.
        pace = getattr(channel, "_answer_pace", None)
        if pace is None:
            pace = channel._answer_pace = [loop.time(), 0, 0]  # window start, taken then, written
        pace[2] += len(message.get("body", b""))
        if _unsent(transport) <= ANSWER_BUFFER_BYTES:
            return
        left, progress_at = _unsent(transport), loop.time()
        if progress_at - pace[0] >= settings.REQUEST_BODY_WINDOW_SECONDS:
            pace[:2] = [progress_at, pace[2] - left]  # a window starts with the wait
        while left > ANSWER_BUFFER_BYTES:
            await asyncio.sleep(0.01)
            if protocol not in self.connections or channel.transport is None:
                return  # the client went away: daphne tells the application
            now, unsent = loop.time(), _unsent(transport)
            if unsent < left:
                progress_at = now
            elif now - progress_at > (stall := settings.ANSWER_STALL_SECONDS):
                logger.warning("An answer made no progress for %s s: its connection is cut", stall)
                transport.abortConnection()
                return
            if now - pace[0] >= settings.REQUEST_BODY_WINDOW_SECONDS:
                taken, least = pace[2] - unsent - pace[1], settings.ANSWER_MIN_BYTES_PER_WINDOW
                if taken < least:
                    logger.warning(
                        "An answer's reader took %d bytes in %.0f s (at least %d): its "
                        "connection is cut",
                        taken,
                        now - pace[0],
                        least,
                    )
                    transport.abortConnection()
                    return
                pace[:2] = [now, pace[2] - unsent]
            left = unsent


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


class Refusal(NamedTuple):
    """An answer given instead of reading a body."""

    status: int
    message: str
    retry_after: int | None = None


class Spool:
    """What this process is receiving, all requests together: body bytes
    (REQUEST_BODIES_MAX_BYTES) and anonymous bodies per client address on the routes that
    read their key from the body (ANONYMOUS_BODIES_PER_ADDRESS). Used on the reactor's
    thread only."""

    def __init__(self) -> None:
        self.bytes = 0
        self.anonymous: Counter[str] = Counter()

    def take(self, count: int) -> bool:
        if self.bytes + count > settings.REQUEST_BODIES_MAX_BYTES:
            return False
        self.bytes += count
        return True


SPOOL = Spool()

#: The verdicts of a head's check that let its body in.
USER, BODY_KEY = "user", "body key"


def _retry_seconds() -> int:
    """The Retry-After of a refusal for want of room: a window, in which bodies end or go."""
    return max(1, math.ceil(settings.REQUEST_BODY_WINDOW_SECONDS))


def _too_large() -> Refusal:
    limit = settings.REQUEST_MAX_BYTES
    return Refusal(413, f"The request body is larger than {limit / (1024 * 1024):g} MB.")


def _spool_full() -> Refusal:
    return Refusal(
        503,
        "The server is receiving too many request bodies at once; try again shortly.",
        _retry_seconds(),
    )


def _view_for(path: str) -> type | None:
    """The class of the view ``path`` routes to (None for no route or a function view): the
    URL conf says which API a path is, and its view how that API answers."""
    try:
        return getattr(resolve(path).func, "view_class", None)
    except Resolver404:
        return None


def _served(path: str) -> bool:
    """Whether a view serves ``path`` (a key in the path taken out first, as
    ``accounts.pathkey`` does): an unserved path is a 404 before its body or its credentials
    are looked at."""
    match = KEY_IN_PATH.match(path)
    try:
        resolve((match["rest"] or "/") if match else path)
    except Resolver404:
        return False
    return True


def _schemes(view: type | None) -> list:
    return list(getattr(view, "authentication_classes", ()))


def _reads_key_from_body(view: type | None) -> bool:
    """Whether ``view`` takes its key in the JSON body (ModelsLab's routes)."""
    return any(issubclass(scheme, BodyKeyAuthentication) for scheme in _schemes(view))


def _no_credentials(view: type | None) -> Refusal:
    """The 401 for a head without credentials: how to send them, as the view's key
    authentication says (HTTP Basic for AUTOMATIC1111's routes)."""
    how = next(
        (s.missing_key_message for s in _schemes(view) if getattr(s, "missing_key_message", "")),
        NO_KEY_MESSAGE,
    )
    allowance = settings.ANONYMOUS_BODY_MAX_BYTES / 1024
    return Refusal(401, f"A body over {allowance:g} KB is read only after credentials. {how}")


def _head_verdict(
    headers: dict[str, str], path: str, address: str, view: type | None
) -> str | Refusal:
    """On a thread: USER when the head brings valid credentials, BODY_KEY when it brings none
    to a route that reads its key from the body, else the refusal to answer."""
    if not _served(path):
        return Refusal(404, "")  # its body: ``not_found_body``, in its API's shape
    close_old_connections()
    try:
        if user_from_head(headers, path, address=address) is not None:
            return USER
        if _reads_key_from_body(view):
            # An address that sent too many wrong keys has its anonymous bodies refused before
            # a byte of them is read (a key in a header still works from there).
            wait = KEY_FAILURES.wait(address)
            if wait:
                return Refusal(
                    429,
                    "Too many wrong API keys from your address; try again in "
                    f"{wait_words(wait)}, or send the key in a header.",
                    wait,
                )
            return BODY_KEY
        return _no_credentials(view)
    except exceptions.Throttled as exc:
        return Refusal(429, str(exc.detail), max(1, math.ceil(exc.wait or 1)))
    except exceptions.AuthenticationFailed as exc:
        return Refusal(401, str(exc.detail))
    finally:
        close_old_connections()


class BodyLeftToDjangoRequest(http_protocol.WebRequest):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self._received = 0
        self._refused = False
        self._length: int | None = 0
        self._checking = False  # the head's credentials are being checked
        self._held: list[bytes] = []  # body bytes read with the head, kept while checking
        self._received_args: tuple | None = None  # the whole body came while checking
        self._expect: list[bytes] | None = None  # the head's Expect, answered once admitted
        self._version = b""
        self._head_path = ""  # the path as Django reads it, without the query string
        self._route_view: type | None = None
        self._view_found = False
        self._client_address = "unknown"
        self._spooled = 0  # bytes counted in SPOOL.bytes
        self._anonymous_address: str | None = None  # counted in SPOOL.anonymous
        self._window_bytes = 0
        self._body_clock: list = []  # the window's and the whole body's timers

    def finish(self) -> None:
        channel = self.channel
        self._stop_body_clock()
        self._release()
        # The next request on this connection has the head deadline, armed before Twisted
        # finishes this one: a request already pipelined behind it is parsed inside
        # ``finish`` and disarms it as its head arrives (armed after, it would close that
        # request's connection mid-answer).
        if channel is not None and channel.transport is not None:
            _head_deadline(channel)
        super().finish()

    def connectionLost(self, reason) -> None:
        self._stop_body_clock()
        self._release()
        super().connectionLost(reason)

    def gotLength(self, length) -> None:
        channel = self.channel
        self._length, self._version = length, channel._version
        self._head_path = unquote(channel._path.split(b"?", 1)[0].decode("ascii", "replace"))
        # Twisted would invite the body with a 100 Continue right after this: _admit does once
        # it is let in, never before a refusal. (The application has no use for the header.)
        self._expect = self.requestHeaders.getRawHeaders(b"Expect")
        self.requestHeaders.removeHeader(b"Expect")
        if length is not None and length > settings.REQUEST_MAX_BYTES:
            self._refuse(*_too_large())
            return
        if length is not None and length <= settings.ANONYMOUS_BODY_MAX_BYTES:
            self._admit()
            return
        self._checking = True
        channel.transport.pauseProducing()  # nothing more is read until the check is done
        self._client_address = self._address()
        checked = threads.deferToThread(
            _head_verdict, self._head_headers(), self._head_path, self._client_address, self._view()
        )
        checked.addCallbacks(self._checked, self._check_failed)

    def _view(self) -> type | None:
        """The class of the view this request's path routes to (looked up once)."""
        if not self._view_found:
            self._route_view, self._view_found = _view_for(self._head_path), True
        return self._route_view

    def _head_headers(self) -> dict[str, str]:
        """The head's headers as Django reads them: lower-case names, repeated ones joined."""
        headers = {}
        for name, values in self.requestHeaders.getAllRawHeaders():
            name = name.decode("latin-1").lower()
            separator = "; " if name == "cookie" else ","
            headers[name] = separator.join(value.decode("latin-1") for value in values)
        return headers

    def _address(self) -> str:
        """The client's address as Django will see it (``REMOTE_ADDR``: daphne's scope)."""
        client = [str(self.client.host), self.client.port] if hasattr(self.client, "host") else None
        if self.server.proxy_forwarded_address_header:
            client, _ = parse_x_forwarded_for(
                self.requestHeaders,
                self.server.proxy_forwarded_address_header,
                self.server.proxy_forwarded_port_header,
                self.server.proxy_forwarded_proto_header,
                client,
                "http",
            )
        return client[0] if client else "unknown"

    def _checked(self, verdict: str | Refusal) -> None:
        self._checking = False
        if self._disconnected or self._refused:
            return
        if isinstance(verdict, Refusal):
            self._refuse(*verdict)
            return
        if verdict == BODY_KEY:
            address = self._client_address
            allowed = settings.ANONYMOUS_BODIES_PER_ADDRESS
            if SPOOL.anonymous[address] >= allowed:
                self._refuse(
                    429,
                    f"More than {allowed} bodies without credentials in their head from your "
                    "address at once: send the key in a header, or try again later.",
                    _retry_seconds(),
                )
                return
            SPOOL.anonymous[address] += 1
            self._anonymous_address = address
        if not self._admit():
            return
        held, self._held = self._held, []
        for data in held:
            self.handleContentChunk(data)
        if self._refused:
            return
        if self._received_args is not None:
            self.requestReceived(*self._received_args)
        channel = getattr(self, "channel", None)  # gone once a quick answer finished it
        if channel is not None and channel.transport is not None:
            channel.transport.resumeProducing()

    def _check_failed(self, failure) -> None:
        self._checking = False
        logger.error("Checking a request's credentials failed:\n%s", failure.getTraceback())
        if not (self._disconnected or self._refused):
            self._refuse(500, "The request's credentials could not be checked.")

    def _admit(self) -> bool:
        """Let the body in: counted in the spool (or a 503), received into ``self.content``
        against the body clock."""
        if not SPOOL.take(self._length or 0):
            self._refuse(*_spool_full())
            return False
        self._spooled = self._length or 0
        _cancel_head_deadline(self.channel)  # the head is in, and let in
        super().gotLength(self._length)
        invited = self._expect and self._expect[0].lower() == b"100-continue"
        if invited and self._version == b"HTTP/1.1" and self._received_args is None:
            self.channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._length != 0:
            self._start_body_clock()
        return True

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if self._checking:  # what one read brought with the head
            self._held.append(data)
            self.channel.transport.pauseProducing()  # again, if a drained write resumed it
            return
        self._received += len(data)
        self._window_bytes += len(data)
        if self._received > settings.REQUEST_MAX_BYTES:
            self._refuse(*_too_large())
            return
        if self._length is None:  # chunked: counted as it comes
            if not SPOOL.take(len(data)):
                self._refuse(*_spool_full())
                return
            self._spooled += len(data)
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version) -> None:
        if self._refused:
            return
        if self._checking:
            self._received_args = (command, path, version)
            return
        self._stop_body_clock()  # the whole body is in
        self._leave_address()
        super().requestReceived(command, path, version)

    def process(self) -> None:
        if not self._refused:
            super().process()

    def _start_body_clock(self) -> None:
        self._window_bytes = 0
        self._body_clock = [
            reactor.callLater(settings.REQUEST_BODY_WINDOW_SECONDS, self._window_ended),
            reactor.callLater(settings.REQUEST_BODY_MAX_SECONDS, self._took_too_long),
        ]

    def _stop_body_clock(self) -> None:
        for timer in self._body_clock:
            if timer.active():
                timer.cancel()
        self._body_clock = []

    def _window_ended(self) -> None:
        least = settings.REQUEST_BODY_MIN_BYTES_PER_WINDOW
        if self._window_bytes < least:
            window = settings.REQUEST_BODY_WINDOW_SECONDS
            message = f"less than {least / 1024:g} KB in {window:g} s"
            self._refuse(408, f"The request body came too slowly: {message}.")
            return
        self._window_bytes = 0
        self._body_clock[0] = reactor.callLater(
            settings.REQUEST_BODY_WINDOW_SECONDS, self._window_ended
        )

    def _took_too_long(self) -> None:
        seconds = settings.REQUEST_BODY_MAX_SECONDS
        self._refuse(408, f"The request body took longer than {seconds:g} s to arrive.")

    def _leave_address(self) -> None:
        if self._anonymous_address is not None:
            SPOOL.anonymous[self._anonymous_address] -= 1
            if SPOOL.anonymous[self._anonymous_address] <= 0:
                del SPOOL.anonymous[self._anonymous_address]
            self._anonymous_address = None

    def _release(self) -> None:
        SPOOL.bytes -= self._spooled
        self._spooled = 0
        self._leave_address()

    def _refuse(self, status: int, message: str, retry_after: int | None = None) -> None:
        """``status`` in the API's error shape, then close: the rest of the body is never
        read, and what was spooled of it is freed at once."""
        self._refused = True
        self._stop_body_clock()
        self._release()
        view = self._view()
        shape = getattr(view, "error_shape", None)  # a compatible API's own (inpainting.api)
        if shape:
            answer = shape(status, message, {})
        elif status == 404:
            answer = not_found_body(self.channel._command.decode("latin-1"), self._head_path)
        else:
            answer = error_body(message)
        body = json.dumps(answer).encode()
        extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
        schemes = _schemes(view)
        challenge = schemes[0]().authenticate_header(None) if schemes and status == 401 else None
        if challenge:  # as DRF answers a 401: how its clients know to send credentials
            extra += f"WWW-Authenticate: {challenge}\r\n"
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: close\r\n\r\n"
        )
        transport = self.channel.transport
        transport.write(head.encode() + body)
        transport.loseConnection()
        if self.content is not None:
            self.content.close()


def main() -> None:
    if any(arg.startswith("--access-log") for arg in sys.argv[1:]):
        ACCESS_LOG.setLevel(logging.INFO)
    cli.AccessLogGenerator = RedactingAccessLog  # the class daphne's CLI instantiates
    http_protocol.WebRequest = BodyLeftToDjangoRequest  # the class daphne's factory builds
    server.HTTPFactory = HeadTimedFactory  # the factory daphne's server listens with
    cli.CommandLineInterface.server_class = AnswerPacedServer  # the server daphne's CLI runs
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
