"""Waiting for a job to end, for the API requests that answer with its result: on the channel
layer (no polling, no thread held), with the database as the last word."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from . import selectors
from .models import Generation
from .progress import EVENT_TYPE, TERMINAL_EVENTS, generation_group

RECHECK_SECONDS = 5.0  # how often a waiter asks the database, in case an event was lost
WAIT_TICK = "dreamlayer.wait_tick"


async def wait_until_finished(generation_id: uuid.UUID, timeout: float) -> None:
    """Wait for the job's terminal event on the channel layer (no polling, no thread held)."""
    async for _ in generation_events(generation_id, timeout):
        pass


async def generation_events(
    generation_id: uuid.UUID, timeout: float
) -> AsyncIterator[dict[str, Any]]:
    """The job's events before its end (progress, with live previews), as they arrive on the
    channel layer, until its terminal event or ``timeout``; the caller reads the row then.

    The receive is never cancelled: at each recheck time the waiter sends itself a tick on its
    own plain channel. Cancelling a channels-redis receive can swallow the cancellation inside
    redis-py and leave the receive looping for ever, and a process-specific channel
    (``new_channel()``) shares one receive lock with every other waiter of the process.
    """
    layer = get_channel_layer()
    channel = f"dreamlayer.wait.{uuid.uuid4().hex}"
    group = generation_group(generation_id)
    await layer.group_add(group, channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks: set[asyncio.Task] = set()

    def tick() -> None:
        task = loop.create_task(layer.send(channel, {"type": WAIT_TICK}))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    alarm = None
    try:
        while True:
            # The job may have finished before we subscribed, or its event may have been lost
            # while Redis was down: the database has the last word.
            state = await sync_to_async(selectors.generation_status)(generation_id=generation_id)
            remaining = deadline - loop.time()
            if state is None or state in Generation.TERMINAL or remaining <= 0:  # None: deleted
                return
            alarm = loop.call_later(min(remaining, RECHECK_SECONDS), tick)
            while True:
                message = await layer.receive(channel)
                if message.get("type") == WAIT_TICK:
                    break
                if message.get("type") != EVENT_TYPE:
                    continue
                if message["event"].get("type") in TERMINAL_EVENTS:
                    return
                yield message["event"]
    finally:
        if alarm is not None:
            alarm.cancel()
        await layer.group_discard(group, channel)
