"""What a long-lived process (daphne, a Celery worker, a test process) does once it has started."""

import gc


def freeze_startup_objects() -> None:
    """Move every object made so far (modules, classes, Django's settings and URLs, the task
    registry) out of the garbage collector's reach: a full collection then walks only what was
    made since. In a test run's web process each full collection had taken 0.26 s (its event
    loop answering no one meanwhile), 18 of them in two and a half minutes; frozen, 0.14 s.
    Frozen objects are never freed, so this runs before any model is loaded (a pipeline holds
    reference cycles only the collector frees)."""
    gc.freeze()
