"""Fooocus-API (konieshadow/Fooocus-API), the older of the two Fooocus APIs, which its Python
client on the package index (fooocus-api-python-client) speaks: ``POST
/v1/generation/image-inpaint-outpaint`` (multipart: the picture and mask as files),
``POST /v2/generation/image-inpaint-outpaint`` (JSON: base64 or URLs), ``GET
/v1/generation/query-job``, ``POST /v1/generation/stop``, ``GET /v1/generation/job-queue``,
``GET /ping`` and ``GET /v1/engines/all-models``. Each runs on the same services as
FooocusAPI's (``fooocus.py``: the same fields read, the same job); only the names and the
answers are this API's (``answers.fooocus``: ``GeneratedImageResult`` lists and
``AsyncJobResponse`` records). ``X-API-KEY`` (or the other key headers) authenticates, as
FooocusAPI's; ``/ping`` needs none."""

from __future__ import annotations

import base64

from django.http import HttpResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors
from ...answers import fooocus
from ...models import Generation
from ...progress import latest_preview
from ...services import generations, images
from ...services.library import library_models_offered, library_only_engine
from .. import common
from .fooocus import FooocusJobSerializer, fooocus_job

TAGS = ["compat: Fooocus-API"]


class FooocusApiJsonSerializer(FooocusJobSerializer):
    """``v2/generation/image-inpaint-outpaint``: JSON, the picture and mask as base64 or URLs;
    Fooocus-API's styles, performance, sharpness, LoRAs, advanced parameters and image prompts
    are accepted and not used."""

    image_field, mask_field = "input_image", "input_mask"
    input_image = serializers.CharField()
    input_mask = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    require_base64 = serializers.BooleanField(default=False)


class FooocusApiFormSerializer(FooocusApiJsonSerializer):
    """``v1/generation/image-inpaint-outpaint``: multipart, the picture and mask as files; its
    lists (``outpaint_selections``) as comma-separated values, as its client sends them."""

    input_image = serializers.FileField()
    input_mask = serializers.FileField(required=False, allow_null=True)

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):  # a form: one field per value, or one comma-separated
            values = [v for given in data.getlist("outpaint_selections") for v in given.split(",")]
            data = {key: data.get(key) for key in data}
            data["outpaint_selections"] = [v.strip() for v in values if v.strip()]
        return super().to_internal_value(data)


@extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="images or job record")})
class FooocusApiInpaintView(common.SubmitAndWaitView):
    """Both versions: the job's images (a ``GeneratedImageResult`` list), or with
    ``async_process`` its ``AsyncJobResponse`` at once (then ``query-job``)."""

    input_serializer = FooocusApiJsonSerializer

    def submit(self, request: Request, serializer) -> common.Submitted:
        data = serializer.validated_data
        generation = fooocus_job(request, serializer)
        return common.Submitted(
            generation, wait=not data["async_process"], context=data["require_base64"]
        )

    def answer(self, request: Request, generation: Generation, as_base64: bool):
        base = common.base_url(request)
        if generation.status not in Generation.TERMINAL:  # async_process, or past the wait
            return Response(fooocus.async_job(generation, base))
        pictures = None
        if as_base64:
            pictures = []
            for image in generation.images.all():
                with image.file.open("rb") as handle:
                    pictures.append(handle.read())
        return Response(fooocus.generated_images(generation, base, pictures))


class FooocusApiFormInpaintView(FooocusApiInpaintView):
    parser_classes = [MultiPartParser, FormParser]
    input_serializer = FooocusApiFormSerializer


class QueryJobSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    require_step_preview = serializers.BooleanField(default=False)


class FooocusApiQueryJobView(APIView):
    """``GET /v1/generation/query-job?job_id=``: the caller's job (another's is a 404),
    with its latest live preview when ``require_step_preview`` and one exists."""

    @extend_schema(tags=TAGS, parameters=[QueryJobSerializer], responses={200: OpenApiResponse()})
    def get(self, request: Request) -> Response:
        query = QueryJobSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        generation = common.get_generation_or_404(request, query.validated_data["job_id"])
        preview = None
        if query.validated_data["require_step_preview"]:
            png = images.preview_png(latest_preview(generation.pk))
            preview = base64.b64encode(png).decode() if png else None
        return Response(fooocus.async_job(generation, common.base_url(request), preview=preview))


class FooocusApiStopView(APIView):
    """``POST /v1/generation/stop``: the caller's current job stops (never another user's)."""

    @extend_schema(tags=TAGS, request=None, responses={200: OpenApiResponse()})
    def post(self, request: Request) -> Response:
        generations.generation_interrupt_current(user=request.user)
        return Response({"msg": "success"})


class FooocusApiJobQueueView(APIView):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse()})
    def get(self, request: Request) -> Response:
        running, finished, last = selectors.generation_queue(user=request.user)
        return Response(fooocus.job_queue(running, finished, last))


class FooocusApiAllModelsView(APIView):
    """The model files a request's ``base_model_name`` may name (what runs without one when
    the library offers none), and the LoRA files."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse()})
    def get(self, request: Request) -> Response:
        models = [model.name for model in library_models_offered(request.user)]
        only = None if models else library_only_engine()
        loras = [model.name for model in selectors.library_lora_list(request.user)]
        return Response(fooocus.all_models(models or ([only[0]] if only else []), loras))


@require_GET
def ping(request) -> HttpResponse:
    """``GET /ping``: Fooocus-API's health check, ``pong``; no key needed."""
    return HttpResponse("pong", content_type="text/plain")
