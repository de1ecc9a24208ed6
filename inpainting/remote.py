"""The one way the server reaches a URL a client gave: image inputs, webhooks and model
installs (``download``: a file streamed to disk, resumed where a cut left it).

Rules, each enforced here and nowhere else:

- http(s) only; no user name or password in the URL; no backslash, whitespace or control
  character anywhere in it (parsers disagree about those, and that disagreement is how a
  check of one host becomes a connection to another).
- The host is resolved **once**. Every address it resolves to must be allowed, and the
  connection goes to exactly that checked address (the ``Host`` header and, for https, the
  TLS server name and certificate check use the URL's host name). A resolver that answers a
  public address first and a private one later never gets the second question.
- Never a private, loopback or reserved address unless ``URL_FETCH_ALLOW_PRIVATE`` is set
  (tests, private deployments); link-local (169.254.0.0/16, fe80::/10: cloud metadata
  services), multicast and unspecified addresses are refused even then.
- Redirects are followed by hand (image inputs only), each hop checked like the first URL.
- ``URL_FETCH_TIMEOUT`` bounds the whole exchange, redirects included: a watchdog shuts the
  socket at the deadline, so a server that drips one byte at a time is cut off too.
- At most ``UPLOAD_MAX_BYTES`` are read; a larger declared ``Content-Length`` is refused
  before the body is read (a model download is bounded by the caller: the free disk).
- Error messages say what the client can fix, never what the network looked like (no
  "connection refused" versus "timed out" to map ports with).
"""

from __future__ import annotations

import base64
import binascii
import errno
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from .errors import RemoteInputError

MAX_REDIRECTS = 5
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_FORBIDDEN_CHARACTERS = re.compile(r"[\\\s\x00-\x1f\x7f]")
_READ_BLOCK = 64 * 1024


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the rules, with the one address the connection must go to."""

    url: str
    scheme: str
    host: str  # the host name as written (for Host, SNI and the certificate check)
    netloc: str  # host[:port] as written: the Host header
    port: int
    address: str  # the resolved, checked IP address
    family: int
    target: str  # path?query, sent in the request line


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    if ip.is_private or ip.is_loopback or ip.is_reserved or not ip.is_global:
        return settings.URL_FETCH_ALLOW_PRIVATE
    return True


def check_url(url: str, field: str) -> CheckedUrl:
    """Apply the rules to ``url`` and resolve its host once; raise ``RemoteInputError``."""
    if not isinstance(url, str) or len(url) > 2000:
        raise RemoteInputError(
            field=field, message=f"The {field} URL must be a string of at most 2000 chars."
        )
    if _FORBIDDEN_CHARACTERS.search(url):
        raise RemoteInputError(
            field=field,
            message=f"The {field} URL contains a backslash, a space or a control character.",
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RemoteInputError(field=field, message=f"The {field} URL must be http or https.")
    if "@" in parts.netloc:
        raise RemoteInputError(
            field=field,
            message=f"The {field} URL must not contain a user name or password (user@host).",
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise RemoteInputError(
            field=field, message=f"The {field} URL has an invalid port."
        ) from None
    if not host:
        raise RemoteInputError(field=field, message=f"The {field} URL has no host.")
    port = port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RemoteInputError(
            field=field, message=f"The {field} URL's host cannot be resolved."
        ) from None
    if not infos or not all(_address_allowed(info[4][0]) for info in infos):
        raise RemoteInputError(
            field=field,
            message=f"The {field} URL points to a private or local address, which is refused.",
        )
    family, address = infos[0][0], infos[0][4][0]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CheckedUrl(url, scheme, host, parts.netloc, port, address, family, target)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class _Deadline:
    """Shuts the socket down when the time is up, whatever call is blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock`` at the deadline (a TLS wrapper replaces the plain socket it wraps)."""
        self._sock = sock
        if self._timer is None:
            self._timer = threading.Timer(max(0.0, self.remaining()), self._cut)
            self._timer.daemon = True
            self._timer.start()

    def _cut(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            # A duplicate descriptor of the same connection: shutting it down wakes a read
            # blocked on the original (plain or TLS) without touching that object's state.
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._sock = None


def _connect(checked: CheckedUrl, deadline: _Deadline) -> http.client.HTTPConnection:
    """An HTTP connection whose socket is already connected to ``checked.address``."""
    sock = socket.socket(checked.family, socket.SOCK_STREAM)
    sock.settimeout(max(0.01, deadline.remaining()))
    deadline.watch(sock)
    try:
        sock.connect((checked.address, checked.port))
        if checked.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=checked.host)
            deadline.watch(sock)
    except BaseException:
        sock.close()
        raise
    connection_class = (
        http.client.HTTPSConnection if checked.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(checked.host, checked.port)
    connection.sock = sock  # http.client then never resolves or connects on its own
    return connection


def _exchange(
    checked: CheckedUrl,
    *,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    max_bytes: int,
    deadline: _Deadline,
    field: str,
) -> Answer:
    if deadline.passed:
        raise _timed_out(field, deadline)
    connection = None
    try:
        connection = _connect(checked, deadline)
        connection.request(
            method, checked.target, body=body, headers={"Host": checked.netloc, **headers}
        )
        response = connection.getresponse()
        declared = response.getheader("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(field, max_bytes)
        data = bytearray()
        if method != "HEAD" and not 300 <= response.status < 400:
            while chunk := response.read1(_READ_BLOCK):
                data.extend(chunk)
                if len(data) > max_bytes:
                    raise _too_large(field, max_bytes)
        if deadline.passed:
            raise _timed_out(field, deadline)
        return Answer(response.status, response.headers, bytes(data))
    except RemoteInputError:
        raise
    except (OSError, ValueError, http.client.HTTPException):
        if deadline.passed:
            raise _timed_out(field, deadline) from None
        raise RemoteInputError(
            field=field, message=f"The {field} URL could not be fetched."
        ) from None
    finally:
        deadline.release()
        if connection is not None:
            connection.close()


def _too_large(field: str, limit: int) -> RemoteInputError:
    return RemoteInputError(
        field=field, message=f"The {field} at that URL is larger than {limit / (1024 * 1024):g} MB."
    )


def _timed_out(field: str, deadline: _Deadline) -> RemoteInputError:
    return RemoteInputError(
        field=field,
        message=f"The {field} URL did not answer in full within {deadline.seconds:g} s.",
    )


def fetch_url(url: str, *, field: str) -> bytes:
    """GET ``url`` under the rules; every redirect target is checked like the first URL."""
    deadline = _Deadline(settings.URL_FETCH_TIMEOUT)
    for _ in range(MAX_REDIRECTS + 1):
        checked = check_url(url, field)
        answer = _exchange(
            checked,
            method="GET",
            body=None,
            headers={"User-Agent": "DreamLayer", "Accept": "image/*"},
            max_bytes=settings.UPLOAD_MAX_BYTES,
            deadline=deadline,
            field=field,
        )
        if answer.status in (301, 302, 303, 307, 308):
            url = urljoin(url, answer.headers.get("Location", ""))
            continue
        if answer.status != 200:
            raise RemoteInputError(
                field=field, message=f"The {field} URL answered {answer.status}, not 200."
            )
        return answer.body
    raise RemoteInputError(field=field, message=f"The {field} URL redirects too many times.")


def post(checked: CheckedUrl, *, body: bytes, headers: dict[str, str], field: str) -> int:
    """POST ``body`` to a checked URL (redirects are not followed); the answer's status.
    Raises ``RemoteInputError`` when the exchange fails or runs past the deadline."""
    answer = _exchange(
        checked,
        method="POST",
        body=body,
        headers=headers,
        max_bytes=64 * 1024,  # a webhook receiver's answer is read, not kept
        deadline=_Deadline(settings.URL_FETCH_TIMEOUT),
        field=field,
    )
    return answer.status


#: How many times a download is resumed after a cut before it fails.
DOWNLOAD_ATTEMPTS = 5


def download(
    url: str,
    dest: Path,
    *,
    field: str,
    on_bytes: Callable[[int, int | None], None],
    attempts: int = DOWNLOAD_ATTEMPTS,
) -> None:
    """GET ``url`` into ``dest`` under the rules, redirects checked hop by hop, resuming from
    what ``dest`` already holds (``Range``), and again after a cut, up to ``attempts`` times.
    ``on_bytes(count, total)`` is called for every block written (``total``: the file's size
    when the server says it); it may raise to stop. ``URL_FETCH_TIMEOUT`` bounds the connection
    and the answer's head, and then each read (a model takes minutes: no whole deadline). A
    full disk (``OSError`` ENOSPC) is raised as it is, at once: another attempt fills it again."""
    for attempt in range(attempts):
        try:
            if _download_once(url, dest, field=field, on_bytes=on_bytes):
                return
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            if attempt == attempts - 1:
                raise RemoteInputError(
                    field=field, message=f"The {field} URL could not be fetched."
                ) from None
        time.sleep(min(2**attempt * 0.5, 5))
    raise RemoteInputError(
        field=field, message=f"The {field} URL's download was cut {attempts} times; try again."
    )


def _download_once(
    url: str, dest: Path, *, field: str, on_bytes: Callable[[int, int | None], None]
) -> bool:
    """One attempt: True when the whole file is in ``dest``, False when the answer was cut."""
    for _ in range(MAX_REDIRECTS + 1):
        checked = check_url(url, field)
        validator = _validator_file(dest)
        have = dest.stat().st_size if dest.exists() else 0
        if have and not validator.is_file():
            have = 0  # a part whose version the server never named: not resumed
        headers = {"Host": checked.netloc, "User-Agent": "DreamLayer", "Accept": "*/*"}
        if have:
            headers["Range"] = f"bytes={have}-"
            # Only the same version of the file is resumed: another one comes whole (200),
            # and a part is never joined to the rest of another file.
            headers["If-Range"] = validator.read_text()
        deadline = _Deadline(settings.URL_FETCH_TIMEOUT)
        connection = _connect(checked, deadline)
        try:
            connection.request("GET", checked.target, headers=headers)
            response = connection.getresponse()
            deadline.release()  # the head is in: from here each read has its own timeout
            connection.sock.settimeout(settings.URL_FETCH_TIMEOUT)
            if response.status in (301, 302, 303, 307, 308):
                url = urljoin(url, response.getheader("Location", ""))
                continue
            if response.status == 416 and have:
                return True  # nothing left to send: the file was whole already
            if response.status not in (200, 206):
                raise RemoteInputError(
                    field=field, message=f"The {field} URL answered {response.status}, not 200."
                )
            named = response.getheader("ETag") or response.getheader("Last-Modified")
            if response.status == 206 and named != headers.get("If-Range"):
                # A server that ignored If-Range sent the rest of another version: start over.
                validator.unlink(missing_ok=True)
                dest.unlink(missing_ok=True)
                continue
            start = have if response.status == 206 else 0
            if start == 0:  # a new file: its version, for a resume (none named: none resumes)
                validator.unlink(missing_ok=True)
                if named and not named.startswith("W/"):  # a weak ETag cannot resume a range
                    validator.write_text(named)
            declared = response.getheader("Content-Length", "")
            total = start + int(declared) if declared.isdigit() else None
            written = start
            with dest.open("r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                while chunk := response.read1(_READ_BLOCK):
                    out.write(chunk)
                    written += len(chunk)
                    on_bytes(len(chunk), total)
            return total is None or written >= total
        finally:
            deadline.release()
            connection.close()
    raise RemoteInputError(field=field, message=f"The {field} URL redirects too many times.")


def _validator_file(dest: Path) -> Path:
    """Beside a download, the version (``ETag`` or ``Last-Modified``) its bytes are of."""
    return dest.with_name(dest.name + ".version")


def image_input_bytes(value: str, *, field: str) -> bytes:
    """The bytes of an image given as an http(s) URL, a data URL or plain base64."""
    if not isinstance(value, str) or not value.strip():
        raise RemoteInputError(field=field, message=f"The {field} is required.")
    value = value.strip()
    if value.lower().startswith(("http://", "https://")) or "://" in value[:16]:
        return fetch_url(value, field=field)
    # MIME base64 breaks its lines every 76 characters (Android's Base64.DEFAULT, which SDAI
    # sends): the line breaks are not data. The body holding it was bounded already.
    payload = "".join(_DATA_URL.sub("", value, count=1).split())
    if len(payload) > settings.UPLOAD_MAX_BYTES * 4 // 3 + 4:
        raise RemoteInputError(
            field=field,
            message=f"The {field} is larger than {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB.",
        )
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RemoteInputError(
            field=field, message=f"The {field} must be an http(s) URL, a data URL or base64."
        ) from None
