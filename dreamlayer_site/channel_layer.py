"""The channel layer: channels-redis with a Redis pool that waits, and unsubscribes that are
retried until they hold.

channels-redis builds each event loop's pool with redis-py's asyncio ``ConnectionPool``
(``channels_redis.utils.create_pool``): 100 connections, and a command that finds them all in
use fails at once (``MaxConnectionsError``). One user opening and aborting 300 websockets six
times filled it in daphne: another user's ``POST /api/img2img`` failed with a 500 (its waiter's
subscribe), another user's websocket failed, and the storm's failed ``group_discard`` calls
left 916 dead channels in its group, kept for the group expiry (issue 51, finding 3).

``RedisChannelLayer`` here takes its pools from redis-py's ``BlockingConnectionPool``
instead: at most ``pool_size`` connections per event loop, and a command that finds them all in
use waits up to ``pool_timeout`` seconds for one (a burst is queued, not failed); only then
does it raise ``ConnectionError``. Commands take a connection for a round trip, except a
receive on a channel, which holds one for its blocking ``BZPOPMIN`` (up to 5 s at a time):
one for all the process's websockets, one for each waiting HTTP request.

A ``group_discard`` that fails anyway (the wait ran out, Redis went away, the caller was
cancelled) does not raise: it is retried in the background a few times
(``discard_retry_delays``), then left to the group's expiry. A dead channel in a group costs
every later ``group_send`` to that group a message sent to nobody, until the expiry drops it.
"""

from __future__ import annotations

import asyncio
import logging

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class RedisChannelLayer(BaseRedisChannelLayer):
    #: Seconds between the attempts of a failed ``group_discard`` (one attempt after each).
    discard_retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0)

    def __init__(self, *, pool_size: int = 100, pool_timeout: float = 10.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        #: Retries in flight: the event loop holds only weak references to tasks.
        self._retries: set[asyncio.Task] = set()

    def create_pool(self, index: int):
        """A blocking pool for a host given by ``address`` (a URL) or by keyword arguments;
        a Sentinel host keeps channels-redis's own pool."""
        host = dict(self.hosts[index])
        if "master_name" in host:
            return super().create_pool(index)
        options = {"max_connections": self.pool_size, "timeout": self.pool_timeout}
        if "address" in host:
            return BlockingConnectionPool.from_url(host.pop("address"), **host, **options)
        return BlockingConnectionPool(**host, **options)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; if Redis does not answer (or the caller is
        cancelled meanwhile), the removal is retried in the background instead of raising."""
        try:
            await super().group_discard(group, channel)
        except asyncio.CancelledError:
            self._discard_later(group, channel)
            raise
        except (RedisError, OSError) as exc:
            logger.warning("group_discard(%s) failed, retrying in the background: %r", group, exc)
            self._discard_later(group, channel)

    def _discard_later(self, group: str, channel: str) -> None:
        task = asyncio.get_running_loop().create_task(self._retry_discard(group, channel))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry_discard(self, group: str, channel: str) -> None:
        error: BaseException | None = None
        for delay in self.discard_retry_delays:
            await asyncio.sleep(delay)
            try:
                await super().group_discard(group, channel)
                return
            except (RedisError, OSError) as exc:
                error = exc
        logger.warning(
            "group_discard(%s) gave up after %d retries (%r): the group's expiry drops it",
            group,
            len(self.discard_retry_delays),
            error,
        )
