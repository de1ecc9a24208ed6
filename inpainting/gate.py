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

Requests that wait for room get it in the order they came. **No user holds more than half
the budget**: a request that would take its user past half of ``WEB_PIXELS_AT_ONCE`` while
the user already holds some waits until the user's own work is done (others' requests go
past it meanwhile); one request alone may hold more (a picture cannot be split, and it holds
its pixels only while they are worked on).

**A ticket covers pixels, not bytes on their way out.** Once an answer's bytes exist (the
PNGs of a resampling upscale), its ticket is let go, and the bytes are held against the
second budget here, ``ANSWERS``: ``ANSWER_BYTES_PER_USER`` per user and
``ANSWER_BYTES_AT_ONCE`` for the process, reserved before any pixel work at their upper
bound and settled to the bytes made. A reader too slow for ``ANSWER_MIN_BYTES_PER_WINDOW``
is cut (``dreamlayer_site.serve``), and a streamed answer lets go of its bytes when it is
closed, sent or not (``answers.a1111.ExtrasAnswer``).

A request's cost is the pixels it holds at once (its inputs and outputs, read from headers
and requested sizes before any pixel is decoded): each kind of work is named once below, in
the cost table (``Work``: what a refusal calls it and how many copies of its pictures it
holds), and passes the gate with ``PIXELS.doing(work, *sizes, user=...)``. One larger than
the whole budget waits for an empty gate: the size rules of each surface (UPLOAD_MAX_PIXELS,
UPSCALE_MAX_PIXELS) bound it.
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


@dataclass(eq=False)
class _Waiter:
    user: Hashable
    cost: int


class PixelGate:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pixels = 0
        self._users: Counter[Hashable] = Counter()
        self._holding: Counter[Hashable] = Counter()  # pixels each user's tickets hold
        #: Requests waiting for room, first come first served: small work does not overtake
        #: a large request that waits (which could then wait for ever under steady traffic).
        self._waiting: deque[_Waiter] = deque()

    def _own_share_full(self, waiter: _Waiter) -> bool:
        """Whether ``waiter`` would take its user past half the budget while it holds some."""
        held = self._holding[waiter.user]
        return bool(held) and held + waiter.cost > settings.WEB_PIXELS_AT_ONCE // 2

    def _may_go(self, me: _Waiter, budget: int) -> bool:
        """Room for ``me``, within its user's half, and no request ahead of it that may go
        (one waiting for its own user's work to end lets the others past)."""
        if self._own_share_full(me) or self._pixels + me.cost > budget:
            return False
        for waiter in self._waiting:
            if waiter is me:
                return True
            if not self._own_share_full(waiter):
                return False
        return True

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
            place = _Waiter(user, cost)
            self._waiting.append(place)
            deadline = time.monotonic() + settings.WEB_PIXEL_WAIT_SECONDS
            try:
                while not self._may_go(place, budget):
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
            self._holding[user] += cost
        return Ticket(user, cost, what, counted)

    def release(self, ticket: Ticket) -> None:
        with self._condition:
            self._pixels -= ticket.pixels
            if ticket.counted:
                self._user_done(ticket.user)
            self._let_go(ticket.user, ticket.pixels)
            self._condition.notify_all()

    def _let_go(self, user: Hashable, pixels: int) -> None:
        self._holding[user] -= pixels
        if self._holding[user] <= 0:
            del self._holding[user]

    def _user_done(self, user: Hashable) -> None:
        self._users[user] -= 1
        if self._users[user] <= 0:
            del self._users[user]

    def doing(self, work: Work, *sizes: tuple[int, int], user: Hashable):
        """``held`` for ``work`` on pictures of ``sizes``: its cost from the cost table."""
        return self.held(user=user, pixels=work.pixels(*sizes), what=work.what)

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


@dataclass
class AnswerHold:
    """Bytes of one answer held against ``ANSWERS`` (reserved, then settled), let go once."""

    user: Hashable
    nbytes: int
    released: bool = False


class AnswerBytes:
    """The bytes of answers made here and on their way out: at most ``ANSWER_BYTES_PER_USER``
    a user and ``ANSWER_BYTES_AT_ONCE`` in all (a 429 / 503 with ``Retry-After`` at once,
    before any pixel work: nothing waits here). An answer larger than a cap alone is let in
    when its user (or the process) holds none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = 0
        self._users: Counter[Hashable] = Counter()

    def reserve(self, *, user: Hashable, nbytes: int, what: str) -> AnswerHold:
        with self._lock:
            mine, most = self._users[user], settings.ANSWER_BYTES_PER_USER
            if mine and mine + nbytes > most:
                raise GateFull(
                    f"Your answers on their way out hold {mine // 2**20} MB of your "
                    f"{most // 2**20} MB; send the {what} again when one has been read.",
                    status=429,
                    retry_after=settings.WEB_PIXEL_RETRY_SECONDS,
                )
            if self._bytes and self._bytes + nbytes > settings.ANSWER_BYTES_AT_ONCE:
                raise GateFull(
                    "The server is sending other large answers; send the "
                    f"{what} again in a moment.",
                    status=503,
                    retry_after=settings.WEB_PIXEL_RETRY_SECONDS,
                )
            self._users[user] += nbytes
            self._bytes += nbytes
        return AnswerHold(user, nbytes)

    def settle(self, hold: AnswerHold, nbytes: int) -> None:
        """The hold becomes ``nbytes`` (the bytes made, at most what was reserved)."""
        with self._lock:
            if hold.released:
                return
            self._users[hold.user] += nbytes - hold.nbytes
            self._bytes += nbytes - hold.nbytes
            hold.nbytes = nbytes

    def release(self, hold: AnswerHold) -> None:
        with self._lock:
            if hold.released:
                return
            hold.released = True
            self._bytes -= hold.nbytes
            self._users[hold.user] -= hold.nbytes
            if self._users[hold.user] <= 0:
                del self._users[hold.user]

    def in_use(self) -> int:
        """Bytes held in the process."""
        with self._lock:
            return self._bytes


#: The bytes of the answers made in this web process on their way out.
ANSWERS = AnswerBytes()


def pixels_of(*sizes: tuple[int, int]) -> int:
    """The pixels of pictures of ``sizes`` (width, height), held at once."""
    return sum(width * height for width, height in sizes)


@dataclass(frozen=True)
class Work:
    """One kind of pixel work in the web process: what a refusal calls it (``what``) and how
    many copies of its pictures it holds at once (``copies``)."""

    what: str
    copies: int

    def pixels(self, *sizes: tuple[int, int]) -> int:
        """Its cost for pictures of ``sizes``: ``copies`` times their pixels."""
        return self.copies * pixels_of(*sizes)


# The cost table: every kind of pixel work the web process does.
#: A job's uploads stored: each picture decoded, its RGB copy and the stored PNG's encoder (a
#: layer's mask: decoded, its share of each pixel and its region, ``engine.layers``).
JOB_UPLOADS = Work("job", 3)
#: A job run again from its stored input and mask, decoded.
JOB_RERUN = Work("job", 3)
#: An upload's alpha channel read (a picture used as its own mask): decoded, its RGBA copy.
ALPHA_READ = Work("picture", 2)
#: An upload turned upright for the browser: decoded, its RGB copy and the PNG's encoder.
UPRIGHT = Work("picture", 3)
#: A picture fitted inside a size: the picture as sent and as fitted (both sizes given).
FITTED = Work("picture", 2)
#: A live preview in the output's format (OpenAI's partial images): decoded, encoded.
PARTIAL_IMAGE = Work("partial image", 2)
#: A stored output in another format, made once (a link): decoded, encoded.
CONVERTED = Work("picture", 2)
#: A stored picture's thumbnail, made once: decoded, shrunk.
THUMBNAIL = Work("picture", 2)
#: The studio's mask preview: the canvas' mask worked on, and the mask sent, decoded and
#: scaled (``MASK_SENT``): one request, both held.
MASK_PREVIEW = Work("mask preview", 3)
MASK_SENT = Work("mask preview", 2)
#: The picture of a job's regenerated area: its input, its mask and the tinted canvas.
REGENERATED = Work("picture", 3)
#: A job's mask as the studio paints it: the mask decoded, worked on, encoded.
PAINTED_MASK = Work("mask", 3)
#: Whether a job's stored mask has transparent pixels (read once, kept): decoded, its alpha.
MASK_TRANSPARENCY = Work("page", 2)
#: GrabCut or a colour selection: the picture, its working copies and the selection.
SELECTION = Work("mask", 4)
#: A mask grown by some pixels: decoded, grown, encoded.
MASK_GROWN = Work("mask", 3)
#: A text-to-image job's empty canvas and its mask, made and encoded (the mask a third of it).
BLANK_CANVAS = Work("canvas", 2)
#: An upscale's upload stored as a job's: decoded, its RGB copy and the stored PNG's encoder.
UPSCALE_UPLOAD = Work("upscale", 3)
#: A resampling upscale answered at once: the largest input and its output while it is made
#: (``pixels_of`` both), and every output kept as PNG until sent (``RESAMPLED``, one copy).
RESAMPLED = Work("upscale", 1)
