"""What AUTOMATIC1111 clients call at start-up (issue 37, first step), replayed in each
client's order with HTTP Basic (the key as the password): every call answers 200 with the
JSON shape the client reads, the lists hold what the library really has (no machine path),
``GET /`` answers an API client with JSON, and an unknown path under the A1111 prefixes is a
JSON 404, not the HTML page."""

from __future__ import annotations

import base64

import pytest
from django.conf import settings
from django.test import Client

from accounts.services import api_key_create
from inpainting.errors import MAX_ECHOED_NAME
from inpainting.services.library import library_scan
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from inpainting.testing.tiny_lora import write_tiny_lora

pytestmark = pytest.mark.django_db

OPENOUTPAINT = [
    "/sdapi/v1/options", "/sdapi/v1/prompt-styles", "/sdapi/v1/samplers", "/sdapi/v1/upscalers",
    "/sdapi/v1/sd-models", "/sdapi/v1/schedulers", "/sdapi/v1/scripts", "/sdapi/v1/loras",
    "/controlnet/version", "/controlnet/model_list", "/controlnet/module_list",
    "/controlnet/settings",
]  # fmt: skip
CYANIC_SD_KRITA = [
    "/queue/status", "/sdapi/v1/sd-models", "/sdapi/v1/sd-vae", "/sdapi/v1/samplers",
    "/sdapi/v1/upscalers", "/sdapi/v1/face-restorers", "/sdapi/v1/prompt-styles",
    "/sdapi/v1/scripts", "/sdapi/v1/loras", "/sdapi/v1/embeddings", "/sdapi/v1/hypernetworks",
    "/sdapi/v1/options",
]  # fmt: skip
SDAI = [
    "/", "/sdapi/v1/loras", "/sdapi/v1/embeddings", "/sdapi/v1/hypernetworks",
    "/sdapi/v1/sd-models", "/sdapi/v1/samplers", "/sdapi/v1/sd-modules", "/sdapi/v1/scripts",
    "/sdapi/v1/script-info", "/sdapi/v1/extensions", "/sdapi/v1/options",
]  # fmt: skip
STABLE_GIMPFUSION = ["/sdapi/v1/options", "/sdapi/v1/sd-models", "/controlnet/model_list"]
OTHERS = [
    "/sdapi/v1/cmd-flags", "/sdapi/v1/memory", "/sdapi/v1/latent-upscale-modes",
]  # fmt: skip


@pytest.fixture
def library(models_dir, tiny_model):
    """The tiny SD 1.5 model, a LoRA and an inpaint ControlNet, scanned."""
    (models_dir / "alpha").symlink_to(tiny_model, target_is_directory=True)
    write_tiny_lora(tiny_model, settings.LORAS_DIR / "ink.safetensors", layout="kohya")
    write_tiny_controlnet(tiny_model, settings.CONTROLNETS_DIR / "inpaint-cn")
    library_scan()


def basic(api_key: str) -> Client:
    token = base64.b64encode(f"me:{api_key}".encode()).decode()
    return Client(headers={"Authorization": f"Basic {token}"})


@pytest.mark.parametrize(
    "calls",
    [OPENOUTPAINT, CYANIC_SD_KRITA, SDAI, STABLE_GIMPFUSION, OTHERS],
    ids=["openoutpaint", "cyanic-sd-krita", "sdai", "stable-gimpfusion", "others"],
)
def test_each_clients_start_up_calls_answer_json(calls, api_key, library):
    client = basic(api_key)
    for path in calls:
        response = client.get(path)
        assert response.status_code == 200, (path, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), path
        response.json()


def test_the_lists_hold_what_the_library_has(api_key, library):
    client = basic(api_key)
    loras = client.get("/sdapi/v1/loras").json()
    assert loras == [{"name": "ink", "alias": "ink", "path": "ink.safetensors", "metadata": {}}]
    titles = client.get("/controlnet/model_list").json()["model_list"]
    assert len(titles) == 1 and titles[0].startswith("inpaint-cn [")
    assert "inpaint_only" in client.get("/controlnet/module_list").json()["module_list"]
    assert client.get("/controlnet/version").json() == {"version": 2}
    names = [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
    assert {"Lanczos", "Nearest"} <= set(names)
    assert client.get("/sdapi/v1/sd-vae").json() == []
    assert client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
    assert client.get("/queue/status").json()["queue_size"] == 0
    # The host's memory is for staff; a user gets A1111's answer for memory it cannot read.
    assert client.get("/sdapi/v1/memory").json()["ram"] == {
        "error": "only staff see the server's memory"
    }
    assert client.post("/sdapi/v1/refresh-checkpoints").status_code == 200
    for path in ("/sdapi/v1/loras", "/controlnet/model_list", "/sdapi/v1/memory"):
        assert str(settings.DATA_DIR) not in client.get(path).content.decode()


def test_staff_see_the_servers_memory(staff_user):
    memory = basic(api_key_create(user=staff_user, name="ops")[1]).get("/sdapi/v1/memory").json()
    assert memory["ram"]["total"] > memory["ram"]["free"] > 0


def test_start_up_calls_need_the_key(api_key, library):
    for path in ("/sdapi/v1/loras", "/controlnet/model_list", "/queue/status"):
        response = Client().get(path)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"].startswith("Basic")
    assert basic("dl_wrong").get("/sdapi/v1/upscalers").status_code == 401


def test_the_root_answers_api_clients_with_json_and_browsers_with_the_studio(api_key):
    answer = basic(api_key).get("/")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert Client().get("/", headers={"Accept": "application/json"}).json()["name"] == "DreamLayer"
    browser = Client().get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
    assert browser.status_code == 302 and "/accounts/login/" in browser["Location"]


def test_unknown_api_paths_are_json_404s(api_key):
    for path in ("/sdapi/v1/no-such-thing", "/controlnet/nothing", "/queue/nope"):
        response = basic(api_key).get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/json"), path


PAGE = "http://127.0.0.1:3456"  # a browser client's page (openOutpaint's, for example)


def preflight(origin: str):
    return Client().options(
        "/sdapi/v1/img2img",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_cors_lets_only_the_configured_sites_call_and_never_with_cookies(api_key, settings):
    """CORS_ALLOWED_ORIGINS names the pages that may call the APIs from a browser: their
    preflight is answered before authentication, without credentials; the key they send is
    accepted from that site. Any other site gets no CORS header and its Basic request is
    refused; by default no site is allowed."""
    assert "Access-Control-Allow-Origin" not in preflight(PAGE)  # the default: none
    settings.CORS_ALLOWED_ORIGINS = [PAGE]
    allowed = preflight(PAGE)
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == PAGE
    assert "authorization" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Access-Control-Allow-Origin" not in preflight("https://evil.example")

    token = base64.b64encode(f"me:{api_key}".encode()).decode()
    for origin, status in ((PAGE, 200), ("https://evil.example", 401)):
        response = Client().get(
            "/sdapi/v1/options",
            headers={
                "Authorization": f"Basic {token}",
                "Origin": origin,
                "Sec-Fetch-Site": "cross-site",
            },
        )
        assert response.status_code == status, (origin, response.content)
        assert (response.get("Access-Control-Allow-Origin") == PAGE) == (origin == PAGE)


def test_basic_from_another_sites_page_is_refused_by_its_origin_alone(api_key):
    """A browser without Fetch Metadata sends no ``Sec-Fetch-Site``: its ``Origin`` still
    tells a page of another site (``null``: a sandboxed or local page) from this server's own
    pages and from scripts, which send no Origin."""
    token = base64.b64encode(f"me:{api_key}".encode()).decode()
    for origin, status in (
        ("https://evil.example", 401),
        ("null", 401),
        ("http://testserver", 200),  # this server's own page
        (None, 200),  # a script
    ):
        headers = {"Authorization": f"Basic {token}", "Host": "testserver"}
        if origin is not None:
            headers["Origin"] = origin
        response = Client().get("/sdapi/v1/options", headers=headers)
        assert response.status_code == status, (origin, response.content)


def test_an_unknown_checkpoint_title_is_not_echoed_whole(api_key):
    """Issue 51: a 5 MB title in ``POST /sdapi/v1/options`` was repeated in a 10 MB answer;
    a name a client sent is cut to MAX_ECHOED_NAME wherever a message repeats it."""
    title = "x" * 5_000_000
    response = Client().post(
        "/sdapi/v1/options",
        {"sd_model_checkpoint": title},
        content_type="application/json",
        headers={"Authorization": f"Basic {base64.b64encode(f'me:{api_key}'.encode()).decode()}"},
    )
    assert response.status_code == 400
    assert len(response.content) < 2000
    assert "x" * MAX_ECHOED_NAME + "…" in response.json()["detail"]
