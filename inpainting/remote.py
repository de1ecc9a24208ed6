"""Image inputs given as URLs, base64 or data URLs (compatible APIs send them so).

One fetcher for every endpoint: http(s) only, a size and a time limit, redirects followed by
hand so every hop is checked again, and never a private, loopback or link-local address
unless ``URL_FETCH_ALLOW_PRIVATE`` is set (tests, private deployments). Link-local addresses
(169.254.0.0/16, fe80::/10: cloud metadata services) are refused even then.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

MAX_REDIRECTS = 5
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


class RemoteInputError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    if ip.is_private or ip.is_loopback or ip.is_reserved:
        return settings.URL_FETCH_ALLOW_PRIVATE
    return True


def check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RemoteInputError(field, f"The {field} URL must be http or https.")
    if not parts.hostname:
        raise RemoteInputError(field, f"The {field} URL has no host.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise RemoteInputError(field, f"The {field} URL's host cannot be resolved.") from None
    for info in infos:
        if not _address_allowed(info[4][0]):
            raise RemoteInputError(
                field, f"The {field} URL points to a private or local address, which is refused."
            )


def fetch_url(url: str, *, field: str) -> bytes:
    """GET ``url`` with the limits; every redirect target is checked like the first URL."""
    limit = settings.UPLOAD_MAX_BYTES
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, field)
        try:
            response = requests.get(
                url,
                stream=True,
                allow_redirects=False,
                timeout=settings.URL_FETCH_TIMEOUT,
                headers={"User-Agent": "DreamLayer"},
            )
        except requests.RequestException as exc:
            raise RemoteInputError(
                field, f"The {field} URL could not be fetched ({exc})."
            ) from None
        with response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status_code != 200:
                raise RemoteInputError(
                    field, f"The {field} URL answered {response.status_code}, not 200."
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise RemoteInputError(
                    field, f"The {field} at that URL is larger than {limit // (1024 * 1024)} MB."
                )
            data = bytearray()
            try:
                for chunk in response.iter_content(64 * 1024):
                    data.extend(chunk)
                    if len(data) > limit:
                        raise RemoteInputError(
                            field,
                            f"The {field} at that URL is larger than {limit // (1024 * 1024)} MB.",
                        )
            except requests.RequestException as exc:
                raise RemoteInputError(
                    field, f"The {field} URL could not be read ({exc})."
                ) from None
            return bytes(data)
    raise RemoteInputError(field, f"The {field} URL redirects too many times.")


def image_input_bytes(value: str, *, field: str) -> bytes:
    """The bytes of an image given as an http(s) URL, a data URL or plain base64."""
    if not isinstance(value, str) or not value.strip():
        raise RemoteInputError(field, f"The {field} is required.")
    value = value.strip()
    if value.lower().startswith(("http://", "https://")) or "://" in value[:16]:
        return fetch_url(value, field=field)
    payload = _DATA_URL.sub("", value, count=1)
    if len(payload) > settings.UPLOAD_MAX_BYTES * 4 // 3 + 4:
        raise RemoteInputError(
            field, f"The {field} is larger than {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB."
        )
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RemoteInputError(
            field, f"The {field} must be an http(s) URL, a data URL or base64."
        ) from None
