"""A long-lived process freezes what its start-up made (``dreamlayer_site.startup``): the web
process once its application and URLs are built, a Celery worker once its tasks are imported
(``worker_init``, before a prefork pool forks and before any model is loaded)."""

import subprocess
import sys

from tests.conftest import ROOT

#: Django, DRF, Celery and the project: well over this many objects at start-up.
STARTUP_OBJECTS = 100_000


def frozen_after(code: str) -> int:
    ran = subprocess.run(
        [sys.executable, "-c", f"import gc\n{code}\nprint(gc.get_freeze_count())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    return int(ran.stdout.split()[-1])


def test_the_web_process_freezes_its_start_up_objects():
    assert frozen_after("import dreamlayer_site.asgi") > STARTUP_OBJECTS


def test_a_worker_freezes_its_start_up_objects_once_its_tasks_are_imported():
    code = (
        "from dreamlayer_site.celery import app\n"
        "assert gc.get_freeze_count() == 0\n"
        "app.WorkController(hostname='startup@tests', pool_cls='solo')  # built, not started\n"
        "import sys; assert 'inpainting.tasks' in sys.modules and 'torch' not in sys.modules"
    )
    assert frozen_after(code) > STARTUP_OBJECTS
