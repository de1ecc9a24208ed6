"""Redis connections are pooled per process: requests through daphne and events published
from synchronous code (a Celery worker) do not open a connection each."""

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
import requests
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from inpainting.progress import generation_group, publish
from tests.conftest import child_env
from tests.live import daphne_server


def connections_opened(client: redis.Redis) -> int:
    return client.info("stats")["total_connections_received"]


def test_events_published_from_sync_code_reuse_one_connection(redis_server):
    server = redis.Redis.from_url(redis_server)
    generation = SimpleNamespace(pk=uuid.uuid4(), owner_id=1)
    layer = get_channel_layer()
    listener = f"test.listener.{uuid.uuid4().hex}"
    async_to_sync(layer.group_add)(generation_group(generation.pk), listener)
    publish(generation, {"type": "status"}, to_user=True)  # opens the publisher's connection
    before = connections_opened(server)
    for step in range(20):
        publish(generation, {"type": "progress", "step": step}, to_user=True)
    # The worker's own heartbeats may open one now and then; 20 events used to open 40.
    assert connections_opened(server) - before <= 3

    async def received() -> list[dict]:
        return [(await layer.receive(listener))["event"] for _ in range(21)]

    events = async_to_sync(received)()
    assert [event.get("step") for event in events] == [None, *range(20)]


@pytest.mark.django_db(transaction=True)
def test_requests_through_daphne_reuse_the_cache_connection(
    django_db_blocker, api_key, redis_server
):
    server = redis.Redis.from_url(redis_server)
    with django_db_blocker.unblock():
        env = child_env()
    headers = {"Authorization": f"Api-Key {api_key}"}
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-connections.log") as url:
        assert requests.get(f"{url}/api/generations/", headers=headers, timeout=30).ok

        def opened_by_20_requests() -> int:
            before = connections_opened(server)
            for _ in range(20):  # each one checks the throttle in the Redis cache
                assert requests.get(f"{url}/api/generations/", headers=headers, timeout=30).ok
            return connections_opened(server) - before

        # The server counts every client's connections, the other test processes' too: of
        # two rounds, the quieter one (20 requests used to open 20).
        opened = min(opened_by_20_requests(), opened_by_20_requests())
    assert opened <= 3, f"{opened} Redis connections for 20 requests"
