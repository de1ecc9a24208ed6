"""Progress websockets: ``/ws/generations/<id>/`` and ``/ws/generations/`` (SPEC §4.3).

Each user has at most WEBSOCKETS_PER_USER open sockets across the web processes: a socket
takes a place in the user's sorted set in Redis (the cache's server) before it joins a group,
and gives it back when it ends. A place is a lease of SOCKET_LEASE_SECONDS that the open socket
renews: a killed process's places lapse on their own, which a plain counter with one expiry
could not do while the user's other sockets kept it alive.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.authentication import api_key_still_usable
from dreamlayer_site.redis_pool import SharedConnectionPool

from . import selectors
from .answers import native
from .progress import Event, generation_group, status_event, user_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
#: The user already has WEBSOCKETS_PER_USER open sockets (the socket is accepted, then closed
#: with this code, so that a browser sees it).
CLOSE_TOO_MANY_SOCKETS = 4429
#: The channel layer did not answer (the standard "try again later").
CLOSE_TRY_AGAIN_LATER = 1013

#: How long a socket's place counts without being renewed, and how often an open socket
#: renews it (a few renewals may fail before a live socket loses its place).
SOCKET_LEASE_SECONDS = 120
SOCKET_RENEW_SECONDS = 40.0

#: Take a place among the user's sockets (KEYS[1]) unless ``limit`` live ones hold one:
#: lapsed places go first. ARGV: now, limit, socket, lease deadline, key expiry (the newest
#: lease's: the set goes with the last of them).
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def sockets_key(user_id) -> str:
    """The sorted set of a user's open sockets (channel name -> lease deadline)."""
    return f"dreamlayer:ws:sockets:{user_id}"


def _redis() -> redis.Redis:
    return redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))


def _take_place(user_id, socket: str) -> bool:
    now = time.time()
    key = sockets_key(user_id)
    limit = settings.WEBSOCKETS_PER_USER
    deadline = now + SOCKET_LEASE_SECONDS
    try:
        taken = _redis().eval(
            _TAKE_PLACE, 1, key, now, limit, socket, deadline, SOCKET_LEASE_SECONDS
        )
    except redis.RedisError as exc:  # a budget, not a lock: Redis down does not refuse
        logger.warning("socket place for user %s not counted: %r", user_id, exc)
        return True
    return bool(taken)


def _renew_place(user_id, socket: str) -> None:
    key = sockets_key(user_id)
    with _redis().pipeline() as pipe:
        pipe.zadd(key, {socket: time.time() + SOCKET_LEASE_SECONDS})
        pipe.expire(key, SOCKET_LEASE_SECONDS)
        pipe.execute()


def _give_place(user_id, socket: str) -> None:
    _redis().zrem(sockets_key(user_id), socket)


_take_place_async = sync_to_async(_take_place, thread_sensitive=False)
_renew_place_async = sync_to_async(_renew_place, thread_sensitive=False)
_give_place_async = sync_to_async(_give_place, thread_sensitive=False)

#: Clean-ups started and not awaited (a consumer cancelled by daphne): held until done.
_BACKGROUND: set[asyncio.Task] = set()


def _in_background(coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_background_done)


def _background_done(task: asyncio.Task) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("socket clean-up failed: %r", task.exception())


def _base_url(scope) -> str:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"localhost").decode("latin-1")
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return f"{scheme}://{host}/"


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous sockets, joins ``group_for(user)`` (None = refuse as not found), at
    most WEBSOCKETS_PER_USER sockets per user.

    However the socket ends (a disconnect, a handshake the client aborted, an error, daphne
    cancelling a consumer that took too long), it leaves its group and gives back its place:
    ``disconnect`` does it, and ``__call__`` does it in the background when ``disconnect`` did
    not run or did not finish. Both are idempotent."""

    group: str | None = None
    #: The user whose socket place this socket holds (None: none).
    place_of: int | None = None
    _left = False
    _stopping: asyncio.Event | None = None

    async def group_for(self, user) -> str | None:
        raise NotImplementedError

    async def on_accepted(self) -> None:
        return None

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Frames from the client are not read: these sockets only send. Nothing parses them
        (channels' JSON consumer would decode every frame, up to 1 MB, on the event loop)."""
        return None

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._stopping is not None:
                self._stopping.set()
            if not self._left and (self.group or self.place_of is not None):
                _in_background(self._leave())

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        group = await self.group_for(user)
        if group is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Before the place is taken: a consumer cancelled while it is being taken still gives
        # it back (giving back a place never taken does nothing).
        self.place_of = user.pk
        if not await _take_place_async(user.pk, self.channel_name):
            self.place_of = None
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.group = group  # before the add: a half-done add is undone too
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except (redis.RedisError, OSError) as exc:
            logger.warning("socket of user %s could not join %s: %r", user.pk, group, exc)
            await self.accept()
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        await self.accept()
        self._stopping = asyncio.Event()
        _in_background(self._keep_alive())
        await self.on_accepted()

    async def disconnect(self, code: int) -> None:
        if self._stopping is not None:
            self._stopping.set()
        await self._leave()

    async def _leave(self) -> None:
        """Leave the group and give back the place (the channel layer retries a failed
        ``group_discard`` by itself; a place not given back lapses with its lease)."""
        try:
            if self.group:
                await self.channel_layer.group_discard(self.group, self.channel_name)
        finally:
            if self.place_of is not None:
                try:
                    await _give_place_async(self.place_of, self.channel_name)
                except redis.RedisError as exc:
                    logger.warning("socket place of user %s lapses: %r", self.place_of, exc)
        self._left = True

    async def _keep_alive(self) -> None:
        """While the socket is open: renew its place every SOCKET_RENEW_SECONDS, and join its
        group again every half of the group expiry, since channels-redis drops a channel from
        a group that long after it joined (a history page stays open for hours). Ends when
        the consumer does; a renewal that crossed the socket's end is undone."""
        loop = asyncio.get_running_loop()
        joined = loop.time()
        rejoin_after = getattr(self.channel_layer, "group_expiry", 86400) / 2
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), SOCKET_RENEW_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await _renew_place_async(self.place_of, self.channel_name)
                if loop.time() - joined >= rejoin_after:
                    await self.channel_layer.group_add(self.group, self.channel_name)
                    joined = loop.time()
            except (redis.RedisError, OSError) as exc:
                logger.warning("socket of user %s not renewed: %r", self.place_of, exc)
            if self._stopping.is_set():  # the consumer ended while this renewed: undo it
                await self._leave()
                return

    async def send_json(self, content, close=False) -> None:
        """Every message goes out only while the credentials of the socket still hold: one
        opened with an API key is closed (4401) once the key is revoked or expires."""
        key = self.scope.get("api_key_id")
        if key is not None and not await database_sync_to_async(api_key_still_usable)(
            api_key_id=key
        ):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await super().send_json(content, close=close)


class GenerationConsumer(GroupConsumer):
    """One generation: a status snapshot on connect, then progress and the outcome."""

    async def group_for(self, user) -> str | None:
        generation_id = self.scope["url_route"]["kwargs"]["generation_id"]
        generation = await database_sync_to_async(selectors.generation_get)(
            user=user, generation_id=generation_id
        )
        if generation is None:  # another user's generation does not exist for you
            return None
        self.generation_id = generation.pk
        return generation_group(generation.pk)

    async def on_accepted(self) -> None:
        await self.send_json(await database_sync_to_async(self._snapshot)())

    def _snapshot(self) -> dict:
        generation = selectors.generation_get(
            user=self.scope["user"], generation_id=self.generation_id
        )
        event = status_event(generation)
        if generation.status == generation.Status.SUCCEEDED:
            event["images"] = native.image_urls(generation, _base_url(self.scope))
            event["metadata"] = native.metadata(generation)
        return event

    def _completed(self) -> dict:
        generation = selectors.generation_get(
            user=self.scope["user"], generation_id=self.generation_id
        )
        if generation is None:  # deleted right after it finished
            return {"type": Event.DELETED, "id": str(self.generation_id)}
        base = _base_url(self.scope)
        return {
            "type": Event.COMPLETED,
            "id": str(generation.pk),
            "images": native.image_urls(generation, base),
            "metadata": native.metadata(generation),
        }

    async def generation_event(self, message: dict) -> None:
        event = message["event"]
        if event.get("type") == Event.COMPLETED:
            event = await database_sync_to_async(self._completed)()
        await self.send_json(event)


class UserGenerationsConsumer(GroupConsumer):
    """Status changes of all the user's generations (for the history page)."""

    async def group_for(self, user) -> str | None:
        return user_group(user.pk)

    async def generation_event(self, message: dict) -> None:
        await self.send_json(message["event"])
