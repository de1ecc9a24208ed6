"""The one bounded gate for pixel work in the web process (docs/adr/0011-the-web-budget.md).

The web process (daphne) parses, checks and answers; some answers need pixels made where the
request is answered: A1111's resampling extras, the studio's mask preview, an upload turned
upright for the browser, GrabCut and colour selection, a stored output in another format for a
link, the pictures of a job's regenerated area and mask, a job's uploads decoded and stored.
Each such piece of work holds a ticket of this gate for as long as its pixels live (an answer
streamed from them included):

- **a process-wide budget of pixels** in flight (``WEB_PIXELS_AT_ONCE``; by default the
  largest upscale the API accepts plus its input, so one of those at a time, or many small
  previews): a request waits up to ``WEB_PIXEL_WAIT_SECONDS`` for room, then is answered 503
  with ``Retry-After``;
- **a per-user count** of such requests in flight (``WEB_PIXEL_REQUESTS_PER_USER``; waiting
  ones count): one more is answered 429 with ``Retry-After`` at once. Small work (holding at
  most ``WEB_PIXELS_SMALL`` pixels, 1 MP by default: the pictures of a small job, a preview of
  a 600 px picture) is not counted there, so a script's parallel small jobs are not refused;
  it still holds its pixels of the process' budget.

Requests that wait for room get it in the order they came.

A request's cost is the pixels it holds at once (its inputs and outputs, read from headers
and requested sizes before any pixel is decoded). One larger than the whole budget waits for
an empty gate: the size rules of each surface (UPLOAD_MAX_PIXELS, UPSCALE_MAX_PIXELS) bound it.
Jobs (inference, model upscales) run on workers and never pass here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from .errors import ClientError


class GateFull(ClientError):
    """Refused at the gate: 429 (this user's share is in use) or 503 (the process' is)."""


@dataclass(frozen=True)
class Ticket:
    user: Hashable
    pixels: int
    what: str
    counted: bool  # in the user's count (more than WEB_PIXELS_SMALL)


class PixelGate:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pixels = 0
        self._users: Counter[Hashable] = Counter()
        #: Requests waiting for room, first come first served: small work does not overtake
        #: a large request that waits (which could then wait for ever under steady traffic).
        self._waiting: deque[object] = deque()

    def acquire(self, *, user: Hashable, pixels: int, what: str) -> Ticket:
        """A ticket for ``pixels`` of work on ``what`` (said in a refusal) for ``user`` (an id;
        None for a request without one, such as a signed link: they share one count)."""
        budget = settings.WEB_PIXELS_AT_ONCE
        cost = max(1, min(int(pixels), budget))
        counted = cost > settings.WEB_PIXELS_SMALL
        with self._condition:
            most = settings.WEB_PIXEL_REQUESTS_PER_USER
            if counted and self._users[user] >= most:
                raise GateFull(
                    f"You have {most} picture request{'s' if most != 1 else ''} in progress "
                    f"here already; send the {what} again when one has been answered.",
                    status=429,
                    retry_after=settings.WEB_PIXEL_RETRY_SECONDS,
                )
            if counted:
                self._users[user] += 1  # a waiting request counts
            place = object()
            self._waiting.append(place)
            deadline = time.monotonic() + settings.WEB_PIXEL_WAIT_SECONDS
            try:
                while self._waiting[0] is not place or self._pixels + cost > budget:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise GateFull(
                            f"The server is busy making other pictures; send the {what} again "
                            "in a moment.",
                            status=503,
                            retry_after=settings.WEB_PIXEL_RETRY_SECONDS,
                        )
                    self._condition.wait(remaining)
            except BaseException:
                if counted:
                    self._user_done(user)
                raise
            finally:
                self._waiting.remove(place)
                self._condition.notify_all()  # the next in line may fit
            self._pixels += cost
        return Ticket(user, cost, what, counted)

    def release(self, ticket: Ticket) -> None:
        with self._condition:
            self._pixels -= ticket.pixels
            if ticket.counted:
                self._user_done(ticket.user)
            self._condition.notify_all()

    def _user_done(self, user: Hashable) -> None:
        self._users[user] -= 1
        if self._users[user] <= 0:
            del self._users[user]

    @contextmanager
    def held(self, *, user: Hashable, pixels: int, what: str) -> Iterator[Ticket]:
        ticket = self.acquire(user=user, pixels=pixels, what=what)
        try:
            yield ticket
        finally:
            self.release(ticket)

    def in_use(self) -> tuple[int, int]:
        """(pixels held, counted requests holding or waiting), for metrics and tests."""
        with self._condition:
            return self._pixels, sum(self._users.values())


#: The web process' gate: every pixel path of a request passes it.
PIXELS = PixelGate()


def pixels_of(*sizes: tuple[int, int]) -> int:
    """The pixels of pictures of ``sizes`` (width, height), held at once."""
    return sum(width * height for width, height in sizes)
