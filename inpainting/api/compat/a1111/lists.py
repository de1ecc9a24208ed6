"""What clients read at start-up: the checkpoints, samplers, schedules, options (and the
checkpoint switch), scripts, upscalers, LoRAs, ControlNet's lists, and the lists that are fixed
here."""

from __future__ import annotations

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
from ....conf import engine_config
from ....services.library import (
    library_deployment_model_offered,
    library_models_offered,
    library_user_a1111_options,
    library_user_a1111_options_keep,
    library_user_checkpoint,
    library_user_checkpoint_set,
)
from ...serializers import (
    check_count,
)
from .base import TAGS, A1111View, without_hash

#: Options one ``POST /sdapi/v1/options`` may carry (A1111 has about 400; clients post all).
MAX_OPTIONS = 1024


def _only_model() -> dict | None:
    """The one entry ``sd-models`` lists when the library offers none: the deployment's own
    model, or with no diffusion model the fill engine that runs, marked as one; None when the
    deployment's model could not be loaded (a worker said so)."""
    deployment = library_deployment_model_offered()
    if deployment:
        return a1111.deployment_model(deployment)
    fill = engine_config().fill_engine()
    return a1111.fill_engine_model(fill) if fill else None


class A1111SdModelsView(A1111View):
    """The diffusion models a job may name (``library_models_offered``); with none, the
    deployment's own model or the fill engine that runs."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="checkpoints")})
    def get(self, request: Request) -> Response:
        models = [a1111.sd_model(model) for model in library_models_offered()]
        only = None if models else _only_model()
        return Response(models or ([only] if only else []))


class A1111SamplersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="samplers")})
    def get(self, request: Request) -> Response:
        return Response(a1111.samplers())


class A1111SchedulersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="noise schedules")})
    def get(self, request: Request) -> Response:
        return Response(a1111.schedules())


class A1111OptionsView(A1111View):
    """``GET``: the options clients read, with the caller's checkpoint. ``POST`` with
    ``sd_model_checkpoint`` switches the checkpoint of the caller's own A1111 jobs (a client's
    "switch model"; never another user's). The other options a user writes are kept for that
    user and read back as written (``dreamlayer_not_acted_on`` names them; the ones DreamLayer
    has its own value for read back as they are here); the answer is A1111's ``null``."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="options")})
    def get(self, request: Request) -> Response:
        default = library_user_checkpoint(request.user) or (
            library_models_offered().filter(is_default=True).first()
        )
        only = None if default else (_only_model() or {}).get("title")
        kept = library_user_a1111_options(request.user)
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
            library_user_checkpoint_set(request.user, without_hash(title))
        library_user_a1111_options_keep(request.user, options)
        return JsonResponse(None, safe=False)  # "null" (DRF renders None as no body at all)


class A1111ScriptsView(A1111View):
    """No A1111 scripts run here (webuiapi asks, to learn which extensions exist)."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="scripts")})
    def get(self, request: Request) -> Response:
        return Response({"txt2img": [], "img2img": []})


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


class A1111UpscalersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="upscalers")})
    def get(self, request: Request) -> Response:
        return Response(a1111.upscalers(list(selectors.library_upscaler_list())))


class A1111LorasView(A1111View):
    """The library's LoRAs, named as a prompt's ``<lora:name:weight>`` tag names them."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="LoRAs")})
    def get(self, request: Request) -> Response:
        return Response([a1111.lora(model) for model in selectors.library_lora_list()])


class ControlNetVersionView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="version")})
    def get(self, request: Request) -> Response:
        return Response({"version": a1111.CONTROLNET_API_VERSION})


class ControlNetModelListView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="model_list")})
    def get(self, request: Request) -> Response:
        return Response(a1111.controlnet_models(list(selectors.library_controlnet_list())))


class ControlNetModuleListView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="module_list")})
    def get(self, request: Request) -> Response:
        return Response(a1111.controlnet_modules())


class ControlNetSettingsView(A1111View):
    """One ControlNet unit runs per job here (more are refused or ignored, and said so)."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="settings")})
    def get(self, request: Request) -> Response:
        return Response({"control_net_unit_count": 1, "control_net_max_models_num": 1})


class A1111RealEsrganModelsView(A1111View):
    """The library's upscalers of the Real-ESRGAN family (A1111's own API tests ask)."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="Real-ESRGAN models")})
    def get(self, request: Request) -> Response:
        return Response(a1111.realesrgan_models(list(selectors.library_upscaler_list())))
