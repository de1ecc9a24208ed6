"""The Celery app: configuration from Django settings (``CELERY_*``), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import worker_init

from dreamlayer_site.startup import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dreamlayer_site.settings")

app = Celery("dreamlayer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def freeze_before_work(**kwargs) -> None:
    """The tasks' modules are imported and no model is loaded yet (a prefork pool's processes,
    forked after this, inherit the frozen objects)."""
    freeze_startup_objects()
