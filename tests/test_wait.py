"""The waiting APIs (``img2img`` with ``wait``, the compatible endpoints) wait on the channel
layer. Under WSGI and the sync test client every request runs in its own event loop, and the
waits end by timeout far more often than by event: none of that may hang a later request."""

import asyncio
import itertools
import time
import uuid

import pytest
from asgiref.sync import async_to_sync

from inpainting.waiting import wait_until_finished

pytestmark = pytest.mark.django_db


@pytest.mark.timeout(120)
def test_thousands_of_short_waits_each_end_on_time():
    # With a cancelled channels-redis receive this hung about one run in three (CI, session 2).
    timeouts = itertools.cycle([0.0, 0.001, 0.002, 0.003, 0.005])
    slowest = 0.0
    for _ in range(2000):
        timeout = next(timeouts)
        started = time.monotonic()
        async_to_sync(wait_until_finished)(uuid.uuid4(), timeout)
        slowest = max(slowest, time.monotonic() - started - timeout)
    assert slowest < 2.0, f"a wait overran its timeout by {slowest:.2f} s"


@pytest.mark.timeout(60)
async def test_a_waiter_whose_client_goes_away_stops_its_receive_by_message(monkeypatch):
    """A streaming client that disconnects cancels its consumer mid-wait: the channel's
    receive is never cancelled (that can hang in redis-py); the pump ends on a message."""
    from inpainting import selectors, waiting

    monkeypatch.setattr(selectors, "generation_status", lambda generation_id: "running")
    events = waiting.generation_events(uuid.uuid4(), 30)
    reader = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.3)  # the pump is in its receive
    reader.cancel()  # what Django does to a streaming response whose client left
    with pytest.raises(asyncio.CancelledError):
        await reader
    await events.aclose()
    started = time.monotonic()
    while waiting._BACKGROUND:
        assert time.monotonic() - started < 5, "the pump did not end"
        await asyncio.sleep(0.05)
