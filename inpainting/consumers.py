"""Progress websockets: ``/ws/generations/<id>/`` and ``/ws/generations/`` (SPEC §4.3)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.authentication import api_key_still_usable

from . import selectors
from .answers import native
from .progress import Event, generation_group, status_event, user_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def _base_url(scope) -> str:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"localhost").decode("latin-1")
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return f"{scheme}://{host}/"


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """Refuses anonymous sockets, joins ``group_for(user)`` (None = refuse as not found)."""

    group: str | None = None

    async def group_for(self, user) -> str | None:
        raise NotImplementedError

    async def on_accepted(self) -> None:
        return None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        group = await self.group_for(user)
        if group is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.on_accepted()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

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
