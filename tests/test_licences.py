"""The licence rule at each job (``services.licences``): where ALLOW_NONCOMMERCIAL_MODELS is
off, a model under a non-commercial licence runs nowhere, whether its install recorded the
licence or its family gives every model one (a model copied in by hand): it is not runnable
in the lists, not the default, refused with the licence's name."""

from __future__ import annotations

import re

import pytest

from inpainting.errors import ClientError
from inpainting.models import LibraryModel
from inpainting.services import library

pytestmark = pytest.mark.django_db


def row(name: str, family: str, licence: str = "") -> LibraryModel:
    return LibraryModel.objects.create(
        name=name,
        path=f"/models/{name}",
        family=family,
        layout=LibraryModel.Layout.DIFFUSERS,
        size_bytes=1,
        sha256=name,
        modified=0.0,
        licence=licence,
    )


def test_a_non_commercial_model_runs_nowhere_where_the_deployment_refuses_them(settings):
    installed = row("fill-dev", "flux", licence="flux-1-dev-non-commercial-license")
    by_hand = row("fibo", "fibo2")  # its family's licence: CC BY-NC 4.0
    free = row("sd", "sd15")
    models = (installed, by_hand, free)
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    assert [library.library_model_runnable(m) for m in models] == [False, False, True]
    for model, licence in (
        (installed, "FLUX.1 [dev] Non-Commercial License"),
        (by_hand, "CC BY-NC 4.0"),
    ):
        with pytest.raises(ClientError, match=re.escape(licence)) as refused:
            library.library_model_set_default(model=model)
        assert refused.value.status == 403 and refused.value.field == "model"
    assert library._ensure_default() == "sd"  # the first model a job may run
    settings.ALLOW_NONCOMMERCIAL_MODELS = True
    assert [library.library_model_runnable(m) for m in models] == [True, True, True]
    library.library_model_set_default(model=by_hand)
    assert LibraryModel.objects.get(is_default=True) == by_hand
