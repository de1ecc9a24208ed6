"""Waiting for a job to end, for the API requests that answer with its result: on the channel
layer (no polling, no thread held), with the database as the last word. When the channel layer
fails (Redis away, its pool busy past its timeout), the wait goes on by asking the database
every FALLBACK_RECHECK_SECONDS: the request still gets its answer, without the progress events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from . import selectors
from .models import Generation
from .progress import EVENT_TYPE, TERMINAL_EVENTS, generation_group

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0  # how often a waiter asks the database, in case an event was lost
#: How often a waiter whose channel layer failed asks the database instead.
FALLBACK_RECHECK_SECONDS = 1.0
WAIT_TICK = "dreamlayer.wait_tick"
#: Attempts at sending a pump its wake-up tick (its receive ends only on a message).
TICK_ATTEMPTS = 3


#: Tasks started and not awaited (a wake-up sent to a pump): held until done.
_BACKGROUND: set[asyncio.Task] = set()


def _in_background(coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def wait_until_finished(generation_id: uuid.UUID, timeout: float) -> None:
    """Wait for the job's terminal event on the channel layer (no polling, no thread held)."""
    async with contextlib.aclosing(generation_events(generation_id, timeout)) as events:
        async for _ in events:
            pass


async def generation_events(
    generation_id: uuid.UUID, timeout: float
) -> AsyncIterator[dict[str, Any]]:
    """The job's events before its end (progress, with live previews), as they arrive on the
    channel layer, until its terminal event or ``timeout``; the caller reads the row then.

    The channel is read by a task of its own (``_pump``) that is never cancelled. Cancelling a
    channels-redis receive can swallow the cancellation inside redis-py and leave the receive
    looping for ever: a consumer that stops early (its client went away, its request was
    cancelled) ends the pump with a message on the pump's channel instead.
    """
    layer = get_channel_layer()
    channel = f"dreamlayer.wait.{uuid.uuid4().hex}"
    queue: asyncio.Queue = asyncio.Queue()
    stopping = asyncio.Event()
    pump = asyncio.get_running_loop().create_task(
        _pump(layer, channel, generation_id, timeout, queue, stopping)
    )
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not pump.done():
            stopping.set()
            _in_background(_tick(layer, channel))  # wakes its receive
            _BACKGROUND.add(pump)
            pump.add_done_callback(_BACKGROUND.discard)


_END = object()


async def _tick(layer, channel: str) -> None:
    """Send the pump on ``channel`` its wake-up; a failed send is tried again (TICK_ATTEMPTS in
    all): a receive that is never woken waits for the job's next event, past its deadline."""
    for attempt in range(TICK_ATTEMPTS):
        try:
            await layer.send(channel, {"type": WAIT_TICK})
            return
        except Exception as exc:  # the layer failing in any way: the next attempt, or give up
            if attempt == TICK_ATTEMPTS - 1:
                logger.warning("wait tick to %s not sent: %r", channel, exc)
            else:
                await asyncio.sleep(FALLBACK_RECHECK_SECONDS)


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stopping`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _pump(layer, channel, generation_id, timeout, queue, stopping) -> None:
    """Read the job's group on ``channel`` into ``queue`` until its end, ``timeout`` or
    ``stopping``; a recheck of the database every RECHECK_SECONDS (a tick the pump sends
    itself), in case an event was lost. If the channel layer fails (subscribing or
    receiving), the pump asks the database every FALLBACK_RECHECK_SECONDS instead (no more
    progress events); only a failing database ends the wait with an error."""
    group = generation_group(generation_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    alarm = None
    listening = True
    try:
        try:
            await layer.group_add(group, channel)
        except Exception as exc:  # whatever the layer raises, the database still answers
            logger.warning("waiting on %s by polling: the channel layer failed: %r", group, exc)
            listening = False
        while not stopping.is_set():
            # The job may have finished before we subscribed, or its event may have been lost
            # while Redis was down: the database has the last word.
            state = await sync_to_async(selectors.generation_status)(generation_id=generation_id)
            remaining = deadline - loop.time()
            if state is None or state in Generation.TERMINAL or remaining <= 0:  # None: deleted
                return
            if not listening:
                await _pause(stopping, min(remaining, FALLBACK_RECHECK_SECONDS))
                continue
            alarm = loop.call_later(
                min(remaining, RECHECK_SECONDS), lambda: _in_background(_tick(layer, channel))
            )
            try:
                while not stopping.is_set():
                    message = await layer.receive(channel)
                    if message.get("type") == WAIT_TICK:
                        break
                    if message.get("type") != EVENT_TYPE:
                        continue
                    if message["event"].get("type") in TERMINAL_EVENTS:
                        return
                    queue.put_nowait(message["event"])
            except Exception as exc:  # whatever the layer raises, the database still answers
                logger.warning("waiting on %s by polling: the channel layer failed: %r", group, exc)
                listening = False
            finally:
                alarm.cancel()
    except Exception as exc:  # the database down: the consumer raises it
        queue.put_nowait(exc)
    finally:
        if alarm is not None:
            alarm.cancel()
        try:
            await layer.group_discard(group, channel)
        except Exception:  # noqa: BLE001 - Redis down: the group entry expires on its own
            pass
        queue.put_nowait(_END)  # last: a consumer that got it leaves no work behind
