"""Test settings: the real settings, with test data in data/test/ and the tiny model."""

import hashlib
import os
import re
from pathlib import Path

_BASE = Path(__file__).resolve().parent.parent
# Under pytest-xdist each worker process (gw0, gw1, ...) has its own data folder (so its own
# SQLite database, embedded Redis, media and model folders) and, on a shared Redis server, its
# own Redis database (so its own Celery broker, channel layer and metrics).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER and "DREAMLAYER_TEST_WORKER" not in os.environ:
    os.environ["DREAMLAYER_TEST_WORKER"] = _WORKER
    _root = Path(os.environ.get("DREAMLAYER_DATA_DIR", str(_BASE / "data" / "test")))
    os.environ["DREAMLAYER_DATA_DIR"] = str(_root / _WORKER)
    if os.environ.get("REDIS_URL"):
        _index = int(_WORKER.removeprefix("gw")) + 1
        _url = os.environ["REDIS_URL"]
        os.environ["REDIS_URL"] = re.sub(r"(/\d+)?$", f"/{_index}", _url, count=1)
    # One OpenMP thread for torch in each test process of the parallel part (this one and
    # the Celery workers and servers it starts): as many test processes run as there are
    # cores, and at the tiny sizes a second thread costs more in waiting than it saves
    # (test_loras, test_model_choice and engine/test_diffusers on 2 processes: 108 s with two
    # threads each, 68 s with one). The serial part, which measures, keeps a user's default.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# OpenMP threads (torch's CPU kernels) sleep when they wait instead of spinning: the tests run
# several torch processes at once (xdist workers, the Celery workers and servers they start) on
# a few cores, where spinning threads burn the cores the others need. Measured on 2 cores:
# test_loras, test_model_choice and engine/test_diffusers on 2 processes took 174 s (306 s of
# CPU) spinning and 85 s (110 s of CPU) sleeping. The arithmetic is the same either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_DATA = Path(os.environ.setdefault("DREAMLAYER_DATA_DIR", str(_BASE / "data" / "test")))
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret-" + "x" * 32)
# The web side validates ``engine=diffusers`` against this; the worker loads the tiny model
# that tests/conftest.py writes to this folder.
os.environ.setdefault("LOAD_SD_INPAINT", "true")
os.environ.setdefault("INPAINT_ENGINE", "classical")
# The tiny model is built once for every test process of this checkout (xdist workers, the
# serial run, the workers they start) in a folder named by a hash of the code that builds it
# (tests/conftest.py ``tiny_model``): a changed recipe gets a new folder.
_RECIPE = hashlib.sha256((_BASE / "inpainting" / "testing" / "tiny_model.py").read_bytes())
_TINY = _BASE / "data" / "test-cache" / _RECIPE.hexdigest()[:12] / "tiny-sd-inpaint"
os.environ.setdefault("SD_INPAINT_MODEL", str(_TINY))
# The configuration single-file checkpoints load with: the tiny model's (tests/conftest.py).
os.environ.setdefault("MODEL_CONFIGS_DIR", str(_DATA / "model-configs"))
os.environ.setdefault("INPAINT_WORKING_SIZE", "64")
os.environ.setdefault("IMG2IMG_WAIT_SECONDS", "60")
# Workers report the models they serve often, so a test's new library model is served soon.
os.environ.setdefault("WORKER_REPORT_SECONDS", "0.5")
os.environ.setdefault("WORKER_REPORT_TIMEOUT_SECONDS", "5")
# The suite makes thousands of requests as a handful of users; tests/test_limits.py starts
# servers with low rates to test the throttles themselves.
os.environ.setdefault("THROTTLE_USER", "100000/min")
os.environ.setdefault("THROTTLE_ANON", "100000/min")
os.environ.setdefault("THROTTLE_SIGNUP", "100000/min")
os.environ.setdefault("THROTTLE_LOGIN_FAILURES", "100000/min")
os.environ.setdefault("THROTTLE_KEY_FAILURES", "100000/min")

from dreamlayer_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.postgresql"  # noqa: F405 - clean-up by DELETE
