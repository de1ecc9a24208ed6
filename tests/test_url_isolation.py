"""Every URL pattern of the project, walked as another user (session and API key) and as
staff, against a victim's finished generation.

Another user gets 404 for anything that names the victim's generation or key, a redirect to a
log-in page for pages they may not see, and never a byte of the victim's data; staff review
(read) everything but cancel, delete and re-run only their own. ``ROUTES`` must name every
URL pattern: a new URL without an entry fails ``test_every_url_pattern_has_an_entry``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver

from accounts.models import ApiKey
from accounts.services import api_key_create, webhook_secret_of
from dreamlayer_site.asgi import application
from inpainting.models import Generation
from inpainting.progress import publish, status_event
from inpainting.routing import websocket_urlpatterns
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

SECRET_PROMPT = "victim-secret-prompt-7f3c"
LOGIN = 302  # a redirect to a log-in page: nothing is shown


@dataclass(frozen=True)
class Route:
    """How to call one URL pattern and what each identity gets."""

    method: str
    session: int
    key: int
    staff: int
    data: dict | None = None


def api_route(method: str, other: int, staff: int | None = None, data=None) -> Route:
    return Route(method, other, other, other if staff is None else staff, data)


def page(method: str, session: int, staff: int | None = None) -> Route:
    # Pages are for browsers: an API key is not a session, so it gets the log-in redirect.
    return Route(method, session, LOGIN, session if staff is None else staff)


ROUTES: dict[str, Route] = {
    # pages
    # the studio for a browser; an API client (a key) gets a JSON "the server is up"
    "home": Route("get", 200, 200, 200),
    "history": page("get", 200),
    "usage": page("get", 200),  # the caller's own figures
    "history-detail": page("get", 404, staff=200),
    "history-rerun": page("post", 404),
    "history-upscale": page("post", 404),
    "history-delete": page("post", 404),
    "accounts:signup": Route("get", 200, 200, 200),
    "accounts:login": Route("get", 200, 200, 200),
    "accounts:logout": Route("post", 302, 302, 302),
    "accounts:password": page("get", 200),
    "accounts:password-done": page("get", 200),
    "accounts:api-keys": page("get", 200),
    "accounts:api-key-revoke": page("post", 404),
    # Replaces the caller's own webhook secret (back to the keys page), never another's.
    "accounts:webhook-secret-rotate": page("post", 302),
    "favicon": Route("get", 302, 302, 302),
    # Prometheus: a staff login or METRICS_TOKEN; a user or an API key is refused
    "metrics": Route("get", 403, 403, 200),
    # documents
    "schema": api_route("get", 200),
    "api-docs": api_route("get", 200),
    # native API: creating endpoints act on your own data (an empty body is a 400)
    "api:img2img": api_route("post", 400),
    "api:upscale": api_route("post", 400),
    "api:upscalers": api_route("get", 200),
    "api:health": api_route("get", 200),
    "api:schedulers": api_route("get", 200),
    "api:models": api_route("get", 200),
    "api:usage": api_route("get", 200),  # the caller's own figures
    # model installs: staff only (a user's session or key: 403; no install has that id: 404)
    "api:model-installs": api_route("get", 403, staff=200),
    "api:model-install": api_route("get", 403, staff=404),
    "api:loras": api_route("get", 200),
    "api:controlnets": api_route("get", 200),
    "api:ip-adapters": api_route("get", 200),
    "api:mask-models": api_route("get", 200),
    "api:mask-generate": api_route("post", 400),
    "api:mask-effective": api_route("post", 400),
    "api:image-png": api_route("post", 400),
    "api:project-open": api_route("post", 400),
    "api:layers-split": api_route("post", 400),
    "api:layer-models": api_route("get", 200),
    "api:generation-list": api_route("get", 200),
    "api:generation-detail": api_route("get", 404, staff=200),
    "api:generation-detail:delete": api_route("delete", 404),
    "api:generation-cancel": api_route("post", 404),
    "api:generation-rerun": api_route("post", 404),
    "api:generation-image": api_route("get", 404, staff=200),
    "api:generation-input": api_route("get", 404, staff=200),
    "api:generation-mask": api_route("get", 404, staff=200),
    "api:generation-mask-thumbnail": api_route("get", 404, staff=200),
    "api:generation-painted-mask": api_route("get", 404, staff=200),
    "api:generation-regenerated": api_route("get", 404, staff=200),
    "api:generation-thumbnail": api_route("get", 404, staff=200),
    "api:generation-project": api_route("get", 404, staff=200),
    # the victim's job has no layers: staff read it and find none
    "api:generation-layer": api_route("get", 404),
    # compatible APIs
    "sd-inpaint": api_route("post", 400),
    "sd-inpaint-health": api_route("get", 200),
    # ModelsLab clients authenticate with a key only (a session is a 401)
    "modelslab-inpaint": Route("post", 401, 400, 401, data={}),
    "modelslab-fetch": Route("post", 401, 404, 401, data={}),
    "fooocus-generate": api_route("post", 400, data={}),
    "fooocus-task": api_route("get", 404, staff=200),
    "fooocus-generate-mask": api_route("post", 400, data={}),
    "deepimage-process": api_route("post", 400, data={}),
    "deepimage-result": api_route("get", 404, staff=200),
    # AUTOMATIC1111 and OpenAI clients authenticate with a key only (a session is a 401);
    # progress and interrupt act on the caller's own job (the victim's is never named)
    "a1111-img2img": Route("post", 401, 400, 401, data={}),
    "a1111-progress": Route("get", 401, 200, 401),
    "a1111-interrupt": Route("post", 401, 200, 401),
    "a1111-skip": Route("post", 401, 200, 401),
    "a1111-sd-models": Route("get", 401, 200, 401),
    "a1111-samplers": Route("get", 401, 200, 401),
    "a1111-schedulers": Route("get", 401, 200, 401),
    "a1111-options": Route("get", 401, 200, 401),
    # POST changes the caller's own checkpoint (tests/test_model_choice.py): {} changes nothing
    "a1111-options-slash": Route("post", 401, 200, 401, data={}),
    "a1111-scripts": Route("get", 401, 200, 401),
    "a1111-png-info": Route("post", 401, 400, 401, data={}),
    "a1111-extra-single-image": Route("post", 401, 400, 401, data={}),
    "a1111-extra-batch-images": Route("post", 401, 400, 401, data={}),
    # what A1111 clients call at start-up: lists of the library's files, the caller's queue
    **{
        name: Route("get", 401, 200, 401)
        for name in (
            "a1111-upscalers",
            "a1111-realesrgan-models",
            "a1111-loras",
            "a1111-memory",
            "a1111-latent-upscale-modes",
            "a1111-prompt-styles",
            "a1111-sd-vae",
            "a1111-sd-modules",
            "a1111-embeddings",
            "a1111-hypernetworks",
            "a1111-face-restorers",
            "a1111-extensions",
            "a1111-script-info",
            "a1111-cmd-flags",
            "controlnet-version",
            "controlnet-model-list",
            "controlnet-module-list",
            "controlnet-settings",
            "queue-status",
        )
    },  # fmt: skip
    **{
        f"a1111-refresh-{what}": Route("post", 401, 200, 401)
        for what in ("checkpoints", "loras", "vae")
    },
    "openai-image-edit": Route("post", 401, 400, 401),
    "openai-image-generation": Route("post", 401, 400, 401, data={}),
    "a1111-txt2img": Route("post", 401, 400, 401, data={}),
    # Fooocus-API: the caller's own jobs (query-job names none here: 400; another user's
    # job id is a 404, tests/test_package_clients.py)
    "fooocus-api-inpaint-v1": api_route("post", 400),  # multipart
    "fooocus-api-inpaint-v2": api_route("post", 400, data={}),
    "fooocus-api-query-job": api_route("get", 400),
    "fooocus-api-stop": api_route("post", 200),
    "fooocus-api-job-queue": api_route("get", 200),
    "fooocus-api-all-models": api_route("get", 200),
    "fooocus-api-ping": api_route("get", 200),  # a health check, no key
    # ModelsLab's routes take the key in the body: a session is not a key
    **{
        f"modelslab-{route}": Route("post", 401, 400, 401, data={})
        for route in (
            "realtime-inpaint",
            "image-editing-inpaint",
            "image-editing-object-removal",
            "image-editing-outpaint",
        )
    },  # fmt: skip
    **{
        f"modelslab-{kind}-fetch": Route("post", 401, 404, 401, data={})
        for kind in ("realtime", "image-editing")
    },
    "openai-models": Route("get", 401, 200, 401),
    "openai-model": Route("get", 401, 404, 401),  # a made-up model name
    # a signed link is its own permission: a made-up one is a 404 for everyone
    "openai-image-file": Route("get", 404, 404, 404),
    "api:image-link": Route("get", 404, 404, 404),  # a signed link: "not-a-signed-link" is not
}
# The admin is one rule for all its URLs: anyone but staff is sent to the admin's log-in.
ADMIN_STAFF_CHECKS = {
    "admin:inpainting_generation_changelist": 200,
    "admin:inpainting_generation_change": 200,
}
WEBSOCKETS = {"ws/generations/": "own stream", "ws/generations/<uuid:generation_id>/": 404}


def url_patterns():
    """(name, route, resolver pattern) for every HTTP URL pattern of the project."""

    def walk(patterns, prefix="", namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            else:
                name = namespace + pattern.name if pattern.name else None
                yield name, prefix + str(pattern.pattern)

    return list(walk(get_resolver().url_patterns))


def test_every_url_pattern_has_an_entry():
    missing = []
    for name, route in url_patterns():
        if route.startswith("admin/"):
            continue  # the admin rule covers all of them
        if name is None or name not in ROUTES:
            missing.append(route)
    assert not missing, f"URL patterns without an isolation entry: {missing}"
    websocket_routes = {str(p.pattern) for p in websocket_urlpatterns}
    assert websocket_routes == set(WEBSOCKETS), websocket_routes ^ set(WEBSOCKETS)
    names = {name for name, _ in url_patterns()}
    stale = {n.removesuffix(":delete") for n in ROUTES} - names
    assert not stale, f"entries for URLs that no longer exist: {stale}"


# --- the walk ------------------------------------------------------------------------------------


@pytest.fixture
def victim(user, api):
    response = post_img2img(api, image_png(), black_box_mask_png(), prompt=SECRET_PROMPT)
    generation = wait_for_status(response.json()["id"])
    assert generation.status == "succeeded"
    row, key = api_key_create(user=user, name="victim key")
    return generation, row, key


def path_for(route: str, generation: Generation, key_row: ApiKey) -> str:
    """A concrete path for a route pattern, aimed at the victim's objects."""
    values = {
        "generation_id": str(generation.pk),
        "pk": str(generation.pk),
        "task_id": str(generation.pk),
        "job": str(generation.pk),
        "object_id": str(generation.pk),
        "index": "0",
        "layer": "0",
        "part": "input",
        "prefix": key_row.prefix,
        "content_type_id": str(ContentType.objects.get_for_model(Generation).pk),
        "id": str(generation.owner_id),
        "app_label": "inpainting",
        "url": "nothing-here/",
        "token": "not-a-signed-link",
        "model": "victim-model.safetensors",
    }
    # Regex routes first (DRF's router, the admin's app list): (?P<name>...)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], route)
    # Then converters: <uuid:generation_id>, <id>
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], path)
    assert "<" not in path and "(" not in path, path
    return "/" + path.replace("^", "").replace("$", "")


def client_as(identity: str, other_user, staff_user) -> Client:
    if identity == "key":
        _, key = api_key_create(user=other_user, name="other's key")
        return Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    client = Client()
    client.force_login(staff_user if identity == "staff" else other_user)
    return client


def call(client: Client, method: str, path: str, data):
    if data is not None:
        return getattr(client, method)(path, json.dumps(data), content_type="application/json")
    return getattr(client, method)(path)


def leaked(response, generation: Generation, key_row: ApiKey) -> list[str]:
    body = b"".join(response) if response.streaming else response.content
    text = body.decode("utf-8", "replace")
    secrets = {
        "generation id": str(generation.pk),
        "prompt": SECRET_PROMPT,
        "key prefix": key_row.prefix,
    }
    return [label for label, value in secrets.items() if value in text]


@pytest.mark.parametrize("identity", ["session", "key", "staff"])
def test_every_url_as_another_user_or_staff(identity, victim, other_user, staff_user):
    generation, key_row, victim_key = victim
    victim_secret = webhook_secret_of(user=generation.owner)
    failures = []
    patterns = url_patterns()
    # Mutations last, log-out at the very end: the walk must not end its own session early.
    order = sorted(patterns, key=lambda p: (p[0] in ("accounts:logout", "admin:logout"), p[1]))
    for name, route in order:
        path = path_for(route, generation, key_row)
        client = client_as(identity, other_user, staff_user)
        if route.startswith("admin/"):
            failures += check_admin(identity, name, path, client, generation, key_row)
            continue
        entries = [name] + ([f"{name}:delete"] if f"{name}:delete" in ROUTES else [])
        for entry in entries:
            spec = ROUTES[entry]
            response = call(client, spec.method, path, spec.data)
            expected = getattr(spec, identity)
            if response.status_code != expected:
                failures.append(
                    f"{spec.method.upper()} {path}: {response.status_code} != {expected}"
                )
            if identity != "staff" and (found := leaked(response, generation, key_row)):
                failures.append(f"{spec.method.upper()} {path} shows the victim's {found}")
    failures += check_websockets(identity, other_user, staff_user, generation)
    assert not failures, "\n".join(failures)
    # Nothing of the victim's was changed by the walk.
    generation.refresh_from_db()
    assert generation.status == "succeeded" and generation.images.count() == 1
    assert Generation.objects.filter(owner=generation.owner).count() == 1
    key_row.refresh_from_db()
    assert not key_row.revoked and key_row.is_valid(victim_key)
    generation.owner.refresh_from_db()
    assert generation.owner.webhook_secret == victim_secret


def check_admin(identity, name, path, client, generation, key_row) -> list[str]:
    if name == "admin:logout":
        return []  # log-out is harmless; it would end the walk's session
    response = client.get(path)
    if identity == "staff":
        expected = ADMIN_STAFF_CHECKS.get(name)
        if expected is not None and response.status_code != expected:
            return [f"GET {path} as staff: {response.status_code} != {expected}"]
        if response.status_code >= 500:
            return [f"GET {path} as staff: {response.status_code}"]
        return []
    failures = []
    if name == "admin:login":
        ok = response.status_code == 200
    elif name is None and path.endswith("/nothing-here/"):
        ok = response.status_code in (302, 404)
    else:
        ok = response.status_code == 302 and response["Location"].startswith("/admin/login/")
    if not ok:
        failures.append(f"GET {path} as {identity}: {response.status_code}, not the admin log-in")
    if found := leaked(response, generation, key_row):
        failures.append(f"GET {path} shows the victim's {found}")
    return failures


def check_websockets(identity, other_user, staff_user, generation) -> list[str]:
    """The victim's generation stream refuses another user (staff may watch); the user
    stream is the caller's own and carries no snapshot of anyone else's jobs."""

    async def connect(path: str, headers):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=10)
        first = await communicator.receive_json_from(timeout=5) if connected else None
        await communicator.disconnect()
        return connected, code, first

    if identity == "key":
        _, key = api_key_create(user=other_user, name="ws key")
        headers = [(b"authorization", f"Api-Key {key}".encode())]
    else:
        client = Client()
        client.force_login(staff_user if identity == "staff" else other_user)
        cookie = client.cookies["sessionid"].value
        headers = [(b"cookie", f"sessionid={cookie}".encode())]
    headers.append((b"host", b"testserver"))
    failures = []
    connected, code, first = async_to_sync(connect)(f"/ws/generations/{generation.pk}/", headers)
    if identity == "staff":
        if not connected or first["id"] != str(generation.pk):
            failures.append("staff could not watch the generation's websocket")
    elif connected:
        failures.append(f"another user ({identity}) subscribed to the victim's websocket")
    elif code != 4404:
        failures.append(f"refused with close code {code}, expected 4404 (not found)")
    if async_to_sync(user_stream_hears_victim)(headers, generation):
        failures.append(f"{identity}'s own stream received the victim's status event")
    return failures


async def user_stream_hears_victim(headers, generation) -> bool:
    """Connect to ``ws/generations/`` and publish a status event of the victim's job."""
    communicator = WebsocketCommunicator(application, "/ws/generations/", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    await sync_to_async(publish)(generation, status_event(generation), to_user=True)
    heard = not await communicator.receive_nothing(timeout=1)
    await communicator.disconnect()
    return heard
