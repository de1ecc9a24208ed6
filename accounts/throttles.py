"""Limits per client address that protect accounts, counted in the shared cache (Redis) so
they hold across web processes:

- ``SIGNUPS``: accounts created from one address (each account has its own quota, so free
  sign-ups would multiply it);
- ``LOGIN_FAILURES``: failed log-ins from one address, whatever the user names (django-axes
  locks a user name + address pair; this stops spraying one password across many names);
- ``KEY_FAILURES``: wrong, revoked or expired API keys from one address.

The address is the connection's (``REMOTE_ADDR``, or the ASGI scope's client): behind a
proxy, run daphne with ``--proxy-headers`` so that it is the client's, not the proxy's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AddressLimit:
    """At most N events per period from one address (a fixed window)."""

    scope: str
    setting: str  # the setting holding the rate, "N/period" as DRF writes it ("5/hour")

    def _rate(self) -> tuple[int, int]:
        count, _, period = getattr(settings, self.setting).partition("/")
        return int(count), PERIODS[period[0]]

    def _key(self, address: str) -> tuple[str, int]:
        _, seconds = self._rate()
        window = int(time.time() // seconds)
        return f"dreamlayer:throttle:{self.scope}:{address}:{window}", seconds

    def wait(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 while it is under the limit."""
        limit, seconds = self._rate()
        key, _ = self._key(address)
        if (cache.get(key) or 0) < limit:
            return 0
        return max(1, math.ceil(seconds - time.time() % seconds))

    def hit(self, address: str) -> None:
        key, seconds = self._key(address)
        cache.add(key, 0, timeout=seconds + 1)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=seconds + 1)


SIGNUPS = AddressLimit("signup", "THROTTLE_SIGNUP")
LOGIN_FAILURES = AddressLimit("login-failures", "THROTTLE_LOGIN_FAILURES")
KEY_FAILURES = AddressLimit("key-failures", "THROTTLE_KEY_FAILURES")


def request_address(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def wait_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
