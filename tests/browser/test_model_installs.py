"""The admin's Model installs page (issue 56), through the session's worker: a staff member
installs a tiny diffusers model by repo id from the fake hub and watches its progress in the
page, then a user's studio job runs on it."""

from __future__ import annotations

import pytest
from huggingface_hub import constants as hf_constants

from inpainting.models import Generation, LibraryModel, ModelInstall
from tests import fake_hub as fake_hub_module
from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import generate_with_model, open_image, photo
from tests.helpers import wait_until_served

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker", "installer"),
]

REPO = "tests/tiny-inpaint"


def test_install_from_the_admin_with_progress_then_a_studio_job_runs_on_it(
    browser, live_url, fake_hub, tiny_model, models_dir, staff_user, user, tmp_path, monkeypatch
):
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    fake_hub.add_folder(REPO, tiny_model)
    fake_hub.bytes_per_second = 400_000  # a few seconds: the progress is there to see
    staff = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    staff.set_default_timeout(20_000)
    errors = []
    staff.on("pageerror", lambda e: errors.append(str(e)))
    staff.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in(staff, live_url, "staff", "pw-staff-123")
    staff.goto(f"{live_url}/admin/inpainting/modelinstall/")

    fill = staff.locator("[data-starter='flux1-fill-dev']").inner_text()
    assert "FLUX.1 [dev] Non-Commercial License" in fill and "non-commercial" in fill
    assert "33.7 GB" in fill and "gated" in fill
    assert "Apache 2.0" in staff.locator("[data-starter='flux2-klein-4b']").inner_text()

    staff.fill("#install-source", REPO)
    staff.click("#install-form button[type=submit]")
    staff.wait_for_selector("text=tiny-inpaint: install queued; its progress is below.")
    install = ModelInstall.objects.get()
    row = staff.locator(f"[data-install-id='{install.pk}']")
    # Live: the row moves while the page stays put (bytes, total, speed, time left).
    row.locator("[data-field='progress']:has-text('/s')").wait_for(timeout=30_000)
    assert " of " in row.locator("[data-field='progress']").inner_text()
    assert row.locator("[data-field='status']").inner_text() == "running"
    screenshot(staff, "admin-model-install-running")
    row.locator("[data-field='status']:text-is('succeeded')").wait_for(timeout=60_000)
    screenshot(staff, "admin-model-install-done")
    assert errors == []
    model = LibraryModel.objects.get(kind=LibraryModel.Kind.CHECKPOINT, name="tiny-inpaint")
    assert (model.family, model.licence, model.present) == ("sd15", "apache-2.0", True)

    wait_until_served("tiny-inpaint")
    studio = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    studio.set_default_timeout(20_000)
    log_in(studio, live_url, "alice", "pw-alice-123")
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(studio, path)
    studio.select_option("#engine", "diffusers")
    generate_with_model(studio, box, "tiny-inpaint")
    generation = Generation.objects.get(owner=user)
    assert generation.status == "succeeded", generation.error
    assert generation.model_name == "tiny-inpaint"


def test_a_gated_repository_fails_with_where_to_accept_then_installs_with_the_token(
    browser, live_url, fake_hub, tiny_model, models_dir, staff_user
):
    fake_hub.add_folder("tests/gated-inpaint", tiny_model, gated=True)
    staff = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    staff.set_default_timeout(20_000)
    log_in(staff, live_url, "staff", "pw-staff-123")
    staff.goto(f"{live_url}/admin/inpainting/modelinstall/")
    assert staff.locator("#token-state").inner_text() == "not set"
    staff.fill("#install-source", "tests/gated-inpaint")
    staff.click("#install-form button[type=submit]")
    first = ModelInstall.objects.get()
    row = staff.locator(f"[data-install-id='{first.pk}']")
    row.locator("[data-field='status']:text-is('failed')").wait_for(timeout=30_000)
    error = row.locator("[data-field='error']").inner_text()
    assert f"accept its licence at {fake_hub.url}/tests/gated-inpaint" in error
    assert "token" in error

    staff.fill("#token-form input[name=token]", fake_hub_module.TOKEN)
    staff.click("#token-form button[type=submit]")
    staff.wait_for_selector("text=Hugging Face token saved.")
    assert staff.locator("#token-state").inner_text() == "set (the admin)"
    assert fake_hub_module.TOKEN not in staff.content()  # never shown again
    staff.fill("#install-source", "tests/gated-inpaint")
    staff.click("#install-form button[type=submit]")
    second = ModelInstall.objects.exclude(pk=first.pk).get()
    row = staff.locator(f"[data-install-id='{second.pk}']")
    row.locator("[data-field='status']:text-is('succeeded')").wait_for(timeout=60_000)
    assert LibraryModel.objects.filter(name="gated-inpaint", present=True).exists()
