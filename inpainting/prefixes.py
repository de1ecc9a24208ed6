"""The URL prefixes under which DreamLayer answers as an API: its own (``/api/``) and the
compatible services' (``/sd-inpaint/``, ModelsLab under ``/api/v6/``, FooocusAPI's ``/v1/``
and ``/tasks/``, Fooocus-API's ``/v1/``, ``/v2/`` and ``/ping``, deep-image.ai's
``/rest_api/``, AUTOMATIC1111's ``/sdapi/``, ``/controlnet/`` and ``/queue/``, OpenAI's
``/v1/``). One table, read by the settings (the
CORS paths) and the error views (a 404 or a 500 there is JSON, which clients parse). No
Django here: the settings import it."""

from __future__ import annotations

API_PREFIXES = (
    "api", "sd-inpaint", "v1", "v2", "ping", "tasks", "rest_api", "sdapi", "controlnet", "queue",
)  # fmt: skip

#: The same, as the paths start (``str.startswith`` takes the tuple).
API_PATHS = tuple(f"/{prefix}/" for prefix in API_PREFIXES)

#: The same, as a regular expression over the whole path (django-cors-headers').
API_PATHS_REGEX = rf"^/({'|'.join(API_PREFIXES)})/.*$"
