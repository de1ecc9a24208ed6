"""What clients read at start-up: the checkpoints, samplers, schedules, options (and the
checkpoint switch), scripts, upscalers, LoRAs, ControlNet's lists, and the lists that are fixed
here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .... import selectors
from ....answers import a1111
from ....services.a1111 import (
    a1111_checkpoint,
    a1111_checkpoint_set,
    a1111_options,
    a1111_options_keep,
)
from ....services.library import library_models_offered, library_only_engine
from ...serializers import (
    check_count,
)
from .base import TAGS, A1111View, without_hash

#: Options one ``POST /sdapi/v1/options`` may carry (A1111 has about 400; clients post all).
MAX_OPTIONS = 1024


def _only_model() -> dict | None:
    """The one entry ``sd-models`` lists when the library offers none
    (``library_only_engine``): the deployment's own model, or the fill engine, marked as one."""
    only = library_only_engine()
    if only is None:
        return None
    name, fill = only
    return a1111.fill_engine_model(name) if fill else a1111.deployment_model(name)


class A1111SdModelsView(A1111View):
    """The diffusion models a job may name (``library_models_offered``); with none, the
    deployment's own model or the fill engine that runs."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="checkpoints")})
    def get(self, request: Request) -> Response:
        models = [a1111.sd_model(model) for model in library_models_offered(request.user)]
        only = None if models else _only_model()
        return Response(models or ([only] if only else []))


class A1111OptionsView(A1111View):
    """``GET``: the options clients read, with the caller's checkpoint. ``POST`` with
    ``sd_model_checkpoint`` switches the checkpoint of the caller's own A1111 jobs (a client's
    "switch model"; never another user's). The other options a user writes are kept for that
    user and read back as written (``dreamlayer_not_acted_on`` names them; the ones DreamLayer
    has its own value for read back as they are here); the answer is A1111's ``null``."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="options")})
    def get(self, request: Request) -> Response:
        # The checkpoint the user chose, else the one their jobs that name none run.
        default = a1111_checkpoint(request.user) or library_models_offered(request.user).first()
        only = None if default else (_only_model() or {}).get("title")
        kept = a1111_options(request.user)
        return Response(a1111.options(default, only, settings.INPAINT_PREVIEW_EVERY, kept))

    @extend_schema(
        tags=TAGS,
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiResponse(description="null, as A1111 answers")},
    )
    def post(self, request: Request) -> Response:
        options = request.data
        if not isinstance(options, dict):
            raise serializers.ValidationError(
                {"options": ["The options must be a JSON object, as GET answers them."]}
            )
        check_count(options, most=MAX_OPTIONS, what="options")
        title = options.get("sd_model_checkpoint")
        if title is not None and not isinstance(title, str):
            raise serializers.ValidationError(
                {"sd_model_checkpoint": ["A model's title, as GET /sdapi/v1/sd-models lists."]}
            )
        if title:
            a1111_checkpoint_set(request.user, without_hash(title))
        a1111_options_keep(request.user, options)
        return JsonResponse(None, safe=False)  # "null" (DRF renders None as no body at all)


class A1111FixedView(A1111View):
    """A start-up list that is fixed here: files DreamLayer has no use for (VAEs apart from a
    model's own, embeddings, hypernetworks, face restorers, styles, extensions) are empty
    lists, so a client shows "none" instead of stopping at a 404."""

    body: Any = None

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="A1111's shape")})
    def get(self, request: Request) -> Response:
        return Response(self.body)


class A1111RefreshView(A1111View):
    """``refresh-checkpoints`` and the like: the library is what staff scanned (``manage.py
    models scan``, the admin); a client's refresh reads it again at its next list."""

    @extend_schema(tags=TAGS, request=None, responses={200: OpenApiResponse(description="{}")})
    def post(self, request: Request) -> Response:
        return Response({})


def _list_view(
    name: str, description: str, answer: Callable[..., Any], doc: str = "", per_user=False
) -> type:
    """A view of a start-up list that answers ``answer()`` at each GET (``per_user``: a list
    of the library, ``answer(user)``: what the caller's groups give them)."""

    class ListView(A1111View):
        @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description=description)})
        def get(self, request: Request) -> Response:
            return Response(answer(request.user) if per_user else answer())

    ListView.__doc__ = doc or None
    ListView.__name__ = ListView.__qualname__ = name
    return ListView


A1111SamplersView = _list_view("A1111SamplersView", "samplers", a1111.samplers)
A1111SchedulersView = _list_view("A1111SchedulersView", "noise schedules", a1111.schedules)
A1111ScriptsView = _list_view(
    "A1111ScriptsView",
    "scripts",
    lambda: {"txt2img": [], "img2img": []},
    "No A1111 scripts run here (webuiapi asks, to learn which extensions exist).",
)
A1111UpscalersView = _list_view(
    "A1111UpscalersView",
    "upscalers",
    lambda user: a1111.upscalers(list(selectors.library_upscaler_list(user))),
    per_user=True,
)
A1111RealEsrganModelsView = _list_view(
    "A1111RealEsrganModelsView",
    "Real-ESRGAN models",
    lambda user: a1111.realesrgan_models(list(selectors.library_upscaler_list(user))),
    "The library's upscalers of the Real-ESRGAN family (A1111's own API tests ask).",
    per_user=True,
)
A1111LorasView = _list_view(
    "A1111LorasView",
    "LoRAs",
    lambda user: [a1111.lora(model) for model in selectors.library_lora_list(user)],
    "The library's LoRAs, named as a prompt's ``<lora:name:weight>`` tag names them.",
    per_user=True,
)
ControlNetVersionView = _list_view(
    "ControlNetVersionView", "version", lambda: {"version": a1111.CONTROLNET_API_VERSION}
)
ControlNetModelListView = _list_view(
    "ControlNetModelListView",
    "model_list",
    lambda user: a1111.controlnet_models(list(selectors.library_controlnet_list(user))),
    per_user=True,
)
ControlNetModuleListView = _list_view(
    "ControlNetModuleListView", "module_list", a1111.controlnet_modules
)
ControlNetSettingsView = _list_view(
    "ControlNetSettingsView",
    "settings",
    lambda: {"control_net_unit_count": 1, "control_net_max_models_num": 1},
    "One ControlNet unit runs per job here (more are refused or ignored, and said so).",
)
