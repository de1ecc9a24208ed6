"""Issue 76, the fifth outside attack: each finding reproduced and held (the slow reader and
the body-key JSON on a live daphne: tests/test_web_budget.py, tests/test_request_bodies.py;
Pillow's plugins: tests/test_byte_scans.py)."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from accounts import throttles
from accounts.models import ApiKey
from accounts.services import api_key_create
from dreamlayer_site import serve
from inpainting import scheduler
from inpainting.answers.native import image_links
from inpainting.api import parsers
from inpainting.api.common import STUDIO_HEADER
from inpainting.api.compat.modelslab import KEY_SCAN_BYTES
from inpainting.api.schema_view import CachedSchemaView
from inpainting.models import DerivedPicture, Generation, ModelInstall, stored_bytes
from inpainting.services import images, installs, runs
from tests.helpers import H, W, black_box_mask_png, image_png, post_img2img
from tests.images import gradient, png_bytes

pytestmark = pytest.mark.django_db


# --- 7: installs need the install permission -------------------------------------------------


def test_a_staff_member_without_the_install_permission_gets_403(staff_user, fake_hub, models_dir):
    """Review-only staff see the installs, and may not install, cancel or set the token."""
    _, key = api_key_create(user=staff_user, name="review")
    api = APIClient(headers={"X-API-Key": key})
    assert api.get("/api/models/installs").status_code == 200
    refused = api.post("/api/models/installs", {"source": "tests/anything"}, format="json")
    assert refused.status_code == 403 and "install permission" in refused.json()["message"]
    install = ModelInstall.objects.create(
        requested_by=staff_user, source="tests/other", name="other", kind="checkpoint"
    )
    assert api.delete(f"/api/models/installs/{install.pk}").status_code == 403
    admin = Client()
    admin.force_login(staff_user)
    page = admin.get("/admin/inpainting/modelinstall/")
    assert page.status_code == 200 and 'id="no-install-permission"' in page.content.decode()
    assert 'id="install-form"' not in page.content.decode()
    for path in (
        "/admin/inpainting/modelinstall/install/",
        "/admin/inpainting/modelinstall/token/",
        f"/admin/inpainting/modelinstall/{install.pk}/cancel/",
    ):
        assert admin.post(path, {"source": "tests/anything", "token": "hf_x"}).status_code == 403
    install.refresh_from_db()
    assert install.status == ModelInstall.Status.QUEUED  # not cancelled
    assert ModelInstall.objects.count() == 1 and installs.hub_token_source() is None


def test_the_install_permission_lets_staff_install(installer, fake_hub, models_dir):
    assert installs.may_install(installer)
    _, key = api_key_create(user=installer, name="ops")
    api = APIClient(headers={"X-API-Key": key})
    response = api.post("/api/models/installs", {"source": "tests/missing"}, format="json")
    assert response.status_code == 202, response.content


# --- 8: what any client can see ---------------------------------------------------------------


def test_a_links_cache_lifetime_is_within_the_links_own(api, settings):
    """A link's picture was cached for an hour from each GET (seen an hour after the job was
    deleted): now no longer than the link itself still works."""
    response = post_img2img(
        api, image_png(), black_box_mask_png(), engine="classical", wait="false"
    )
    generation = Generation.objects.get(pk=response.json()["id"])
    runs.generation_run(generation_id=str(generation.pk))  # here: no worker needed
    settings.IMAGE_LINK_SECONDS = 600
    link = image_links(generation, "http://testserver")[0].removeprefix("http://testserver")
    response = Client().get(link)
    assert response.status_code == 200
    age = int(re.fullmatch(r"private, max-age=(\d+)", response["Cache-Control"]).group(1))
    assert 590 <= age <= 600
    settings.IMAGE_LINK_SECONDS = 5_000  # an hour at most, as the key-protected files
    assert Client().get(link)["Cache-Control"] == "private, max-age=3600"


def test_the_schema_is_built_once_a_minute_not_per_request(monkeypatch):
    """It was built for every anonymous request (0.2-0.3 s of the web process' CPU)."""
    CachedSchemaView._built.clear()
    builds = []
    generator = CachedSchemaView.generator_class
    real = generator.get_schema
    monkeypatch.setattr(
        generator, "get_schema", lambda self, **kw: builds.append(1) or real(self, **kw)
    )
    for _ in range(4):
        response = Client().get("/api/schema/")
        assert response.status_code == 200 and b"/api/img2img" in response.content
    for query in ("?version=made-up-1", "?version=made-up-2", "?lang=zz"):  # no key of their own
        assert Client().get(f"/api/schema/{query}").status_code == 200
    assert len(builds) == 1 and len(CachedSchemaView._built) == 1
    CachedSchemaView._built.clear()


# --- 2: anonymous bodies on the body-key routes ------------------------------------------------

#: The attack's body: a wrong key, then 14.5 million zeros (29 MB).
HUGE_JSON = b'{"key": "dl_wrongkey1.secret", "a": [' + b"0," * 14_500_000 + b"0]}"


def _cpu(call):
    started = time.process_time()
    result = call()
    return result, time.process_time() - started


def test_an_anonymous_29_mb_json_body_is_never_parsed(
    monkeypatch, api_key, settings, throttle_clock
):
    """Finding 2: a wrong key in a 29 MB JSON body was found by parsing all of it (a minute of
    web CPU for two at once, 1.8 GB). The key is found by a scan of the body's start, and any
    client's JSON is bounded in elements before it is parsed."""
    parsed = []
    real = parsers.json_loads
    monkeypatch.setattr(parsers, "json_loads", lambda raw: parsed.append(1) or real(raw))
    client = Client(REMOTE_ADDR="10.76.2.1")
    post = lambda **headers: client.post(  # noqa: E731
        "/api/v6/images/inpaint", HUGE_JSON, content_type="application/json", headers=headers
    )
    refused, cpu = _cpu(post)
    print(f"\nan anonymous 29 MB JSON body: {refused.status_code} after {cpu:.3f} s of CPU")
    assert refused.status_code == 401 and refused.json()["message"].startswith("Invalid API key")
    assert not parsed and cpu < 0.5  # the attack's figure: 30 s of CPU each
    keyed, cpu = _cpu(lambda: post(**{"X-API-Key": api_key}))
    print(f"the same body with a valid key: {keyed.status_code} after {cpu:.3f} s of CPU")
    assert keyed.status_code == 400 and "more than 1000000 elements" in keyed.json()["message"]
    assert cpu < 0.5  # counted, not decoded
    settings.THROTTLE_KEY_FAILURES = "2/minute"
    parsed.clear()
    for _ in range(3):  # the address's wrong-key throttle: 429s, as cheap
        answer = post()
    assert answer.status_code == 429 and not parsed


def test_a_key_after_the_body_start_is_still_found(api_key):
    """A client that puts ``key`` after its pictures (past the scanned start) is read by a
    parse within the JSON budget."""
    body = json.dumps({"init_image": "x" * (KEY_SCAN_BYTES + 10), "key": api_key})
    answer = Client().post("/api/v6/images/inpaint", body, content_type="application/json")
    # Past the key (a 401 before): the request's own fields are checked.
    assert answer.status_code == 400 and "mask_image" in answer.json()["errors"], answer.content


def test_a_throttled_address_has_its_anonymous_body_refused_before_it_is_read(
    settings, throttle_clock
):
    """The head's verdict, taken before daphne reads a byte of a body: an address the
    wrong-key throttle holds gets a 429 for a body-key route, not a read of its body."""
    settings.THROTTLE_KEY_FAILURES = "2/minute"
    view = serve._view_for("/api/v6/images/inpaint")
    address = "10.76.2.9"
    assert serve._head_verdict({}, "/api/v6/images/inpaint", address, view) == serve.BODY_KEY
    for _ in range(2):
        throttles.KEY_FAILURES.hit(address)
    verdict = serve._head_verdict({}, "/api/v6/images/inpaint", address, view)
    assert isinstance(verdict, serve.Refusal) and verdict.status == 429
    assert "send the key in a header" in verdict.message and verdict.retry_after >= 1


# --- 5: the studio lane ------------------------------------------------------------------------


def _queued(client, **headers) -> Generation:
    response = post_img2img(
        client,
        image_png(),
        black_box_mask_png(),
        engine="classical",
        wait="false",
        headers=headers,
    )
    assert response.status_code == 202, response.content
    return Generation.objects.get(pk=response.json()["id"])


def test_the_studio_lane_is_for_the_studio_pages_jobs_one_at_a_time(user, api_key):
    """Finding 5: a script that logs in with the user's password went ahead of every API
    user (six such jobs put another user's API job 7th). The studio lane is now for the
    studio page's jobs (its token), one of a user's at a time; a re-run through the API keeps
    the original client's lane and its key (and the key's lane as staff set it since)."""
    session = APIClient()
    session.force_login(user)
    script = [_queued(session), _queued(session)]
    assert [job.priority for job in script] == [Generation.PRIORITY_BATCH] * 2
    page = session.get("/").content.decode()  # the studio, as a person opens it
    token = re.search(r'data-studio-token="([^"]+)"', page).group(1)
    studio = [_queued(session, **{STUDIO_HEADER: token}) for _ in range(2)]
    assert [job.priority for job in studio] == [
        Generation.PRIORITY_INTERACTIVE,  # the person's job
        Generation.PRIORITY_BATCH,  # a second at once waits with the scripts
    ]
    assert _queued(session, **{STUDIO_HEADER: "forged"}).priority == Generation.PRIORITY_BATCH
    Generation.objects.filter(pk=studio[0].pk).update(status=Generation.Status.SUCCEEDED)
    session.logout()  # the token ends with its log-in
    session.force_login(user)
    assert _queued(session, **{STUDIO_HEADER: token}).priority == Generation.PRIORITY_BATCH
    keyed = APIClient(headers={"X-API-Key": api_key})
    rerun = keyed.post(f"/api/generations/{studio[0].pk}/rerun/")
    assert Generation.objects.get(pk=rerun.json()["id"]).priority == Generation.PRIORITY_BATCH
    by_key = _queued(keyed)
    key = ApiKey.objects.get(pk=by_key.api_key_id)
    key.job_priority = -1  # staff demoted the key
    key.save()
    again = Generation.objects.get(
        pk=session.post(f"/api/generations/{by_key.pk}/rerun/").json()["id"]
    )
    assert (again.api_key_id, again.priority) == (key.pk, -1)


# --- 4: stored pictures within the quota --------------------------------------------------------


def alpha_mask_png() -> bytes:
    """OpenAI's mask: transparent where the picture is edited."""
    mask = Image.new("RGBA", (W, H), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((10, 10, 40, 30), fill=(0, 0, 0, 0))
    return png_bytes(mask)


def _finished(api) -> Generation:
    generation = _queued(api)
    runs.generation_run(generation_id=str(generation.pk))  # here: no worker needed
    return generation


def test_one_variant_a_format_is_stored_however_many_compressions_are_asked(api):
    """Finding 4: each replay with another output_compression stored a new derived picture (2
    formats x 101 qualities an output). One variant a format is kept; other qualities are made
    for their request and not stored."""
    generation = _finished(api)
    output = generation.images.get()
    before = stored_bytes(user_id=generation.owner_id)
    for quality in range(50, 70):
        with images.image_file_as(output, "jpeg", quality).open("rb") as handle:
            assert handle.read(3) == b"\xff\xd8\xff"
    kept = DerivedPicture.objects.filter(generation=generation)
    assert kept.count() == 1 and kept.get().kind.endswith("-jpeg-q50")
    assert stored_bytes(user_id=generation.owner_id) == before + kept.get().stored_bytes


def test_a_replay_in_another_output_format_is_another_request(api_key, settings):
    """OpenAI's output_format and output_compression are part of what an Idempotency-Key
    replays: 20 replays with new compressions are refused (422), not answered from the job."""
    settings.IMG2IMG_WAIT_SECONDS = 0.1  # no worker here: the job stays queued
    client = APIClient(headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": "k-1"})

    def edit(compression: int):
        return client.post(
            "/v1/images/edits",
            {
                "image": SimpleUploadedFile("p.png", image_png(), "image/png"),
                "mask": SimpleUploadedFile("m.png", alpha_mask_png(), "image/png"),
                "prompt": "a red rose",
                "output_format": "jpeg",
                "output_compression": compression,
            },
            format="multipart",
        )

    edit(80)
    assert Generation.objects.count() == 1
    for compression in range(81, 101):
        assert edit(compression).status_code == 422
    assert edit(80).status_code != 422 and Generation.objects.count() == 1


def test_queued_outputs_are_reserved_against_the_quota(keyed_api, settings):
    """Finding 4: the quota was checked before a job and its outputs landed after: three
    parallel 4x upscales took a user to 411 MB of a 150 MB quota. A job reserves its outputs'
    bytes while queued or running, so the quota is passed by one job's reserve at most."""
    settings.STORAGE_QUOTA_BYTES_PER_USER = 2 * 1024 * 1024
    picture = SimpleUploadedFile("p.png", png_bytes(gradient(256, 256)), "image/png")

    def upscale():
        picture.seek(0)
        return keyed_api.post(
            "/api/upscale", {"image": picture, "factor": 4, "wait": "false"}, format="multipart"
        )

    first = upscale()
    assert first.status_code == 202, first.content
    job = Generation.objects.get(pk=first.json()["id"])
    assert job.reserved_bytes == 3 * 1024 * 1024  # its 1024 px output, 3 bytes a pixel
    refused = upscale()
    assert refused.status_code == 403 and "kept for the outputs" in refused.json()["message"]
    Generation.objects.filter(pk=job.pk).update(status=Generation.Status.FAILED)
    assert upscale().status_code == 202  # the reserve ends with the job


# --- 6: fair share ------------------------------------------------------------------------------


def test_an_upscale_costs_its_output_pixels(keyed_api):
    """Finding 6: an upscale cost its input's megapixels however many it made (a 4x upscale
    makes 16 times as many), so a user of upscales took 91 % of a worker's minute."""
    fill = _queued(keyed_api)
    picture = SimpleUploadedFile("p.png", image_png(), "image/png")
    made = keyed_api.post(
        "/api/upscale", {"image": picture, "factor": 4, "wait": "false"}, format="multipart"
    )
    upscale = Generation.objects.get(pk=made.json()["id"])
    costs = scheduler.generation_costs(list(Generation.objects.select_related("source")))
    assert costs[upscale.pk] == pytest.approx(16 * costs[fill.pk])
