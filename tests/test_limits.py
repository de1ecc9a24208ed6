"""Per-user limits across real server processes: the active-generation quota is enforced in
the database, and DRF's throttles count in Redis, so neither depends on which process answers."""

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.cache import cache

from inpainting.models import Generation
from tests.conftest import child_env
from tests.helpers import black_box_mask_png, image_png
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def two_servers(django_db_blocker, **env):
    with django_db_blocker.unblock():
        environment = child_env(**env)
    folder = Path(settings.DATA_DIR)
    with contextlib.ExitStack() as stack:
        urls = [
            stack.enter_context(daphne_server(environment, folder / f"daphne-limits-{i}.log"))
            for i in range(2)
        ]
        yield urls


def test_fifty_parallel_posts_with_a_quota_of_three_create_exactly_three(
    django_db_blocker, user, api_key, paused_worker
):
    files = {"image": image_png(), "mask": black_box_mask_png()}
    headers = {"Authorization": f"Api-Key {api_key}"}
    with two_servers(
        django_db_blocker, MAX_ACTIVE_GENERATIONS_PER_USER="3", THROTTLE_USER="1000/min"
    ) as urls:

        def post(i):
            return requests.post(
                f"{urls[i % 2]}/api/img2img",
                headers=headers,
                files={k: (f"{k}.png", v, "image/png") for k, v in files.items()},
                data={"wait": "false", "prompt": f"job {i}"},
                timeout=60,
            )

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(post, range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 3 + [429] * 47
    refused = next(r for r in responses if r.status_code == 429).json()
    assert refused["status"] == "error" and "the limit is 3" in refused["message"]
    assert Generation.objects.filter(owner=user).count() == 3
    accepted = {r.json()["id"] for r in responses if r.status_code == 202}
    assert accepted == {str(pk) for pk in Generation.objects.values_list("pk", flat=True)}


def test_throttles_hold_across_processes(django_db_blocker, user, api_key):
    cache.delete(f"throttle_user_{user.pk}")
    headers = {"Authorization": f"Api-Key {api_key}"}
    with two_servers(django_db_blocker, THROTTLE_USER="6/min") as urls:
        codes = [
            requests.get(f"{urls[i % 2]}/api/generations/", headers=headers, timeout=10)
            for i in range(8)
        ]
    assert [r.status_code for r in codes] == [200] * 6 + [429] * 2
    limited = codes[-1]
    assert limited.json()["status"] == "error"
    assert "Request was throttled" in limited.json()["message"]
    assert int(limited.headers["Retry-After"]) > 0
