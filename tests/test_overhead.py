"""``bench/overhead.py`` against a real daphne and Celery worker: what the service adds around
the classical engine, per job, is under 0.25 s (SPEC §8)."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import child_env
from tests.live import script_against_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_api_overhead_per_job_is_under_a_quarter_second(django_db_blocker, api_key):
    with django_db_blocker.unblock():
        env = child_env(MAX_ACTIVE_GENERATIONS_PER_USER="50")
    log = Path(settings.DATA_DIR) / "daphne-overhead.log"
    result = script_against_server(env, log, "bench/overhead.py", "--key", api_key, "--jobs", "8")
    print(result.stdout)
    assert "overhead per job" in result.stdout, result.stderr[-4000:]
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
