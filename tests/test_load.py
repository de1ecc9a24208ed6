"""The load script against a real daphne and worker: 50 websocket subscribers and 20 waiting
``img2img`` clients while health stays under 200 ms (p99)."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import child_env
from tests.live import script_against_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_load_script_holds_subscribers_and_waiters_with_fast_health(django_db_blocker, api_key):
    with django_db_blocker.unblock():
        env = child_env(
            MAX_ACTIVE_GENERATIONS_PER_USER="50",
            WEBSOCKETS_PER_USER="60",  # the script subscribes 50 sockets as one user
            IMG2IMG_WAIT_SECONDS="300",
        )
    log = Path(settings.DATA_DIR) / "daphne-load.log"
    # 128 px pictures: the script's mask keeps only the middle (its white inpaints), so a job
    # fills three quarters of a noise picture: 1.1-1.3 s at 256 px, 0.3 s at 128. The clients
    # still wait while the jobs run one at a time (2026-11-29: the call 27-31 s -> 15 s).
    args = ("--key", api_key, "--size", "128")
    result = script_against_server(env, log, "scripts/load.py", *args)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "50 websocket subscribers connected" in result.stdout
    assert "img2img (20/20 succeeded)" in result.stdout
