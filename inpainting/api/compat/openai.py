"""OpenAI's image edit API: ``POST /v1/images/edits`` (what the ``openai`` SDK's
``client.images.edit`` calls), and ``GET /v1/images/files/<link>`` for its ``url`` answers.

Kept from OpenAI: multipart ``image`` (or ``image[]``, the first used), ``mask`` (a PNG with
alpha, the image's size: transparent = edit; without a mask, the image's own transparent
pixels), ``prompt``, ``n``, ``size`` (``auto``: the input's size; ``WxH``: the input scaled to
cover it and centre-cropped), ``response_format`` (``b64_json``, or ``url``: a link that works
without a key for an hour), ``model`` (a library model; OpenAI's own model names mean the
default), ``output_format`` with ``output_compression``, ``stream`` with ``partial_images``
(server-sent events from the live previews), ``background`` (``transparent``: the alpha a
model paints kept, where its VAE paints one; with ``jpeg`` a 400, as OpenAI's),
``Authorization: Bearer <key>``, and errors as
``{"error": {"message", "type", "param", "code"}}``. ``usage`` is omitted: nothing here is
counted in tokens.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication

from ... import selectors
from ...answers import native, openai
from ...engine.images import OUTPUT_FORMATS
from ...engine.parameters import BACKGROUNDS
from ...errors import ClientError, echoed
from ...gate import GateFull
from ...models import Generation
from ...params import GenerationParams
from ...progress import Event
from ...services import generations, images
from ...services.library import (
    library_model_named,
    library_models_offered,
    library_only_engine,
)
from ...uploads import check_dimensions
from ...waiting import generation_events
from .. import common
from ..parsers import JSONParser
from ..serializers import ChoiceField, field_for, requester
from ..views import ImageLinkView

TAGS = ["compat: OpenAI"]
#: Model names of OpenAI's own: a client that names one gets the default model here.
OPENAI_MODELS = re.compile(r"^(gpt-image|dall-e|chatgpt-image)", re.IGNORECASE)
SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")  # ASCII digits, the whole value


def _no_retry(response):
    """The SDK retries 409s and 5xx unless told: a job is never submitted twice by it."""
    if response.status_code != 429:
        response["x-should-retry"] = "false"
    return response


class OpenAIEditSerializer(serializers.Serializer):
    prompt = field_for("prompt")
    n = serializers.IntegerField(min_value=1, max_value=field_for("samples").max_value, default=1)
    size = serializers.CharField(default="auto", max_length=16)
    response_format = ChoiceField(choices=["b64_json", "url"], default="b64_json")
    model = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    output_format = ChoiceField(choices=list(OUTPUT_FORMATS), default="png")
    output_compression = serializers.IntegerField(min_value=0, max_value=100, default=100)
    stream = serializers.BooleanField(default=False)
    partial_images = serializers.IntegerField(min_value=0, max_value=3, default=0)
    background = ChoiceField(choices=["auto", *BACKGROUNDS], default="auto")

    def validate_prompt(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Missing required parameter: 'prompt'.")
        return value

    def validate_size(self, value: str) -> tuple[int, int] | None:
        if value == "auto":
            return None
        found = SIZE.fullmatch(value)
        if not found:
            raise serializers.ValidationError(
                f"Invalid size {echoed(value)}: give 'auto' or WIDTHxHEIGHT, e.g. '1024x1024'."
            )
        width, height = int(found[1]), int(found[2])
        check_dimensions(width, height, field="size")
        return width, height

    def validate(self, attrs: dict) -> dict:
        """OpenAI's rule: a transparent background needs a format with alpha (png, webp)."""
        if attrs["background"] == "transparent" and attrs["output_format"] == "jpeg":
            raise serializers.ValidationError(
                {"background": "background 'transparent' needs output_format png or webp."}
            )
        return attrs

    def job_background(self) -> str:
        """The job's ``background``: transparent where asked (a model that paints alpha keeps
        it; another's answer is opaque), else opaque (``auto`` too)."""
        return "transparent" if self.validated_data["background"] == "transparent" else "opaque"

    def library_model(self) -> str | None:
        """The library model ``model`` names; None for OpenAI's own names (the default)."""
        name = (self.validated_data.get("model") or "").strip()
        if OPENAI_MODELS.match(name):
            return None
        return library_model_named(name, field="model", user=requester(self))

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        size = data["size"]
        return GenerationParams(
            prompt=data["prompt"],
            samples=data["n"],
            mask_alpha="required",
            exact_mask_size=True,
            resize={"width": size[0], "height": size[1], "mode": "crop"} if size else None,
            model=self.library_model(),
            background=self.job_background(),
        )


class OpenAIGenerationSerializer(OpenAIEditSerializer):
    """``images/generations``: the edit's fields without pictures; ``size`` ``auto`` is
    1024x1024, as OpenAI's."""

    AUTO = (1024, 1024)

    def to_params(self) -> GenerationParams:
        """An inpaint of an empty canvas (``images.blank_canvas``), every pixel masked and
        denoised from noise (strength 1), the whole canvas at once."""
        data = self.validated_data
        return GenerationParams(
            prompt=data["prompt"],
            samples=data["n"],
            mask_mode="white_inpaints",
            mask_blur=0,
            denoising_strength=1.0,
            masked_content="noise",
            inpaint_area="whole",
            model=self.library_model(),
            background=self.job_background(),
        )


def _uploads(request: Request):
    """The image (``image`` or the first of ``image[]``), the mask (the ``mask`` file, or the
    image itself when it has transparent pixels to edit: OpenAI's rule without a mask) and
    the reference pictures (the other images, in order)."""
    found = request.FILES.getlist("image") or request.FILES.getlist("image[]")
    if not found:
        raise ClientError("Missing required parameter: 'image'.", field="image")
    mask = request.FILES.get("mask")
    image, mask = (
        (found[0], mask)
        if mask is not None
        else images.image_as_its_own_mask(found[0], user=request.user)
    )
    return image, mask, tuple(found[1:])


def _image_items(generation: Generation, request: Request, context: dict) -> list[dict]:
    fmt, quality = context["output_format"], context["output_compression"]
    items = []
    for image in generation.images.all():
        if context["response_format"] == "url":
            token = native.image_link_token(image, fmt, quality)
            url = request.build_absolute_uri(reverse("openai-image-file", args=[token]))
            items.append(openai.image_item(url=url))
        else:
            data = images.image_bytes_as(image, fmt, quality)
            items.append(openai.image_item(b64_json=base64.b64encode(data).decode()))
    return items


def _background(generation: Generation) -> str:
    """``transparent`` where the job's result kept the alpha its model painted."""
    return (generation.metadata or {}).get("background", "opaque")


def _output_size(generation: Generation) -> tuple[int, int]:
    first = next(iter(generation.images.all()), None)
    if first is not None:
        return first.width, first.height
    resize = GenerationParams.from_json(generation.params).resize
    if resize:
        return resize["width"], resize["height"]
    return generation.source.width, generation.source.height


@extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="ImagesResponse or SSE")})
def _models_offered(request: Request) -> list[dict]:
    """The models the caller may name as ``model`` (``library_models_offered``), as OpenAI
    lists them; with none, what runs without one (``library_only_engine``)."""
    entries = [
        openai.model_entry(model.name, int(model.created_at.timestamp()))
        for model in library_models_offered(request.user)
    ]
    only = None if entries else library_only_engine()
    return entries or ([openai.model_entry(only[0], 0)] if only else [])


class OpenAIModelsView(APIView):
    """``GET /v1/models`` (what apps built on the openai SDK call first)."""

    authentication_classes = [ApiKeyAuthentication]
    error_shape = staticmethod(openai.error_body)

    @extend_schema(
        tags=TAGS,
        operation_id="openai_models_list",
        responses={200: OpenApiResponse(description="the models")},
    )
    def get(self, request: Request) -> Response:
        return Response(openai.model_list(_models_offered(request)))


class OpenAIModelView(OpenAIModelsView):
    """``GET /v1/models/<model>``: one model the caller may name, or OpenAI's 404."""

    @extend_schema(
        tags=TAGS,
        operation_id="openai_models_retrieve",
        responses={200: OpenApiResponse(description="the model")},
    )
    def get(self, request: Request, model: str) -> Response:
        found = next((m for m in _models_offered(request) if m["id"] == model), None)
        if found is None:
            message = f"The model {echoed(model)} does not exist here (GET /v1/models)."
            return Response(openai.error_body(404, message, {"model": []}), status=404)
        return Response(found)


class OpenAIImageEditView(common.SubmitAndWaitView):
    authentication_classes = [ApiKeyAuthentication]
    parser_classes = [MultiPartParser, FormParser]
    error_shape = staticmethod(openai.error_body)
    input_serializer = OpenAIEditSerializer
    blocking = True

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        return _no_retry(response) if response.status_code >= 400 else response

    def submit(self, request: Request, serializer: OpenAIEditSerializer) -> common.Submitted:
        image, mask, references = _uploads(request)
        return self.submitted(request, serializer, serializer.to_params(), image, mask, references)

    def submitted(
        self, request: Request, serializer, params: GenerationParams, image, mask, references=()
    ) -> common.Submitted:
        """The job of ``params`` on its pictures, with what its answer needs."""
        data = serializer.validated_data
        generation = common.generation_create_for(
            request,
            Generation.Client.OPENAI,
            image,
            mask,
            params,
            reference_files=references,
            # The output's format and compression: recorded, and part of what an
            # Idempotency-Key replays (a replay in another format is another request).
            extra_metadata={
                "openai": {
                    "model": data.get("model") or None,
                    "output_format": data["output_format"],
                    "output_compression": data["output_compression"],
                }
            },
        )
        context = {
            key: data[key]
            for key in (
                "response_format",
                "output_format",
                "output_compression",
                "stream",
                "partial_images",
            )
        }
        return common.Submitted(generation, wait=not data["stream"], context=context)

    def answer(self, request: Request, generation: Generation, context: dict):
        if context["stream"]:
            response = StreamingHttpResponse(
                _events(request, generation, context), content_type="text/event-stream"
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        problem = common.unfinished(generation, blocking=True)
        if problem is not None:
            code, message = problem
            return Response(openai.error_body(code, message, {}), status=code)
        body = openai.images_response(
            int(generation.created_at.timestamp()),
            _image_items(generation, request, context),
            output_format=context["output_format"],
            size=_output_size(generation),
            warnings=native.warnings(generation),
            background=_background(generation),
        )
        return Response(body)


class OpenAIImageGenerationView(OpenAIImageEditView):
    """``POST /v1/images/generations`` (JSON): text to image as an inpaint of an empty canvas
    of ``size``, when a diffusion model runs; without one, OpenAI's error saying that one is
    needed. Its answers are the edit's."""

    parser_classes = [JSONParser]
    input_serializer = OpenAIGenerationSerializer

    def submit(self, request: Request, serializer: OpenAIGenerationSerializer) -> common.Submitted:
        params = serializer.to_params()
        generations.generation_check_whole_picture(params, field="prompt", kind="txt2img")
        size = serializer.validated_data["size"] or serializer.AUTO
        canvas, mask = images.blank_canvas(*size, user=request.user)
        return self.submitted(request, serializer, params, canvas, mask)


async def _events(request: Request, generation: Generation, context: dict) -> AsyncIterator[bytes]:
    """Partial images from the live previews, spread over the steps (``partial_images`` at
    most, fewer when the job has fewer previews), then a completed event per image, or an
    error event."""
    wanted, sent = context["partial_images"], 0
    fmt, quality = context["output_format"], context["output_compression"]
    size = await sync_to_async(_output_size)(generation)
    events = generation_events(generation.pk, settings.IMG2IMG_WAIT_SECONDS)
    async with contextlib.aclosing(events):  # a client gone ends the wait at once
        async for event in events:
            preview = event.get("preview") if event.get("type") == Event.PROGRESS else None
            due = event.get("step", 0) * (wanted + 1) >= (sent + 1) * (event.get("total") or 1)
            if preview and sent < wanted and due:
                jpeg = base64.b64decode(preview.partition(",")[2])
                try:
                    data = await sync_to_async(images.preview_as)(
                        jpeg, size, fmt, quality, user=request.user
                    )
                except GateFull:  # the web process is busy: this partial image is skipped
                    continue
                yield openai.partial_image_event(
                    data, sent, created=int(time.time()), output_format=fmt, size=size
                )
                sent += 1
    finished = await sync_to_async(selectors.generation_get)(
        user=request.user, generation_id=generation.pk
    )
    if finished is None:
        yield openai.error_event(404, Generation.DELETED_ERROR)
        return
    problem = common.unfinished(finished, blocking=True)
    if problem is not None:
        yield openai.error_event(*problem)
        return
    items = await sync_to_async(_image_items)(
        finished, request, {**context, "response_format": "b64_json"}
    )
    for item in items:
        yield openai.completed_event(
            item["b64_json"],
            created=int(time.time()),
            output_format=fmt,
            size=size,
            background=_background(finished),
        )


class OpenAIImageFileView(ImageLinkView):
    """An image named by a signed link from ``response_format=url``: no key, for an hour
    (``IMAGE_LINK_SECONDS``), like OpenAI's own links; errors in OpenAI's shape."""

    error_shape = staticmethod(openai.error_body)

    @extend_schema(tags=TAGS, responses={(200, "image/png"): OpenApiResponse(description="image")})
    def get(self, request: Request, token: str):
        return super().get(request, token)
