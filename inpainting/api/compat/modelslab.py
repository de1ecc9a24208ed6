"""ModelsLab v6: ``POST /api/v6/images/inpaint`` and ``POST /api/v6/images/fetch/<id>``.

Kept from ModelsLab: JSON in and out, ``key`` in the body (headers work too), images as URLs
or base64, white = inpaint, ``samples`` up to 4, ``seed`` null = random, its scheduler class
names, ``base64`` output, and the ``success`` / ``processing`` (with ``fetch_result``) /
``error`` answers. Differences: ``id`` is a UUID string; ``model_id``, ``width`` and
``height`` are recorded but the server's model runs and the output keeps the input's size.
``webhook`` gets the final answer (with ``track_id``) as a signed POST.
"""

from __future__ import annotations

import base64
import uuid

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import ApiKeyAuthentication, user_for_key
from accounts.schema import ApiKeyScheme
from accounts.throttles import request_address

from ... import selectors, services
from ...engine.types import MAX_SEED
from ...models import Generation
from ...params import GenerationParams
from ...remote import RemoteInputError, image_input_bytes
from .. import presenters
from ..views import api_key_of, base_url, wait_until_finished, waited_generation

#: ModelsLab's scheduler class names -> DreamLayer's names (Karras chosen by its flag).
SCHEDULERS = {
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PNDM",
    "LMSDiscreteScheduler": "LMS",
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DEISMultistepScheduler": "DEIS",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
}
YES = {"yes", "true", "1"}


class BodyKeyAuthentication(ApiKeyAuthentication):
    """ModelsLab clients put the key in the JSON body as ``key``; headers work as well."""

    def authenticate(self, request):
        from_header = super().authenticate(request)
        if from_header is not None:
            return from_header
        data = request.data if isinstance(request.data, dict) else {}
        key = data.get("key")
        if not key:
            return None
        if not isinstance(key, str):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return user_for_key(key, address=request_address(request))


class BodyKeyScheme(ApiKeyScheme):
    """OpenAPI: the header form of the key (the body's ``key`` cannot be declared there)."""

    target_class = BodyKeyAuthentication
    name = "ApiKeyAuthOrBodyKey"


@extend_schema_field({"oneOf": [{"type": "boolean"}, {"type": "string"}]})
class FlexibleBoolean(serializers.Field):
    """ModelsLab sends "yes" / "no" strings as often as booleans."""

    def to_internal_value(self, data):
        if data is None:
            return False
        if isinstance(data, bool):
            return data
        if isinstance(data, str | int):
            return str(data).lower() in YES
        raise serializers.ValidationError('Expected true / false or "yes" / "no".')

    def to_representation(self, value):
        return value


class ModelsLabInpaintSerializer(serializers.Serializer):
    init_image = serializers.CharField()
    mask_image = serializers.CharField()
    prompt = serializers.CharField(max_length=2000, allow_blank=True, default="")
    negative_prompt = serializers.CharField(
        max_length=2000, allow_blank=True, allow_null=True, default=""
    )
    model_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    width = serializers.IntegerField(required=False, allow_null=True, min_value=8, max_value=4096)
    height = serializers.IntegerField(required=False, allow_null=True, min_value=8, max_value=4096)
    samples = serializers.IntegerField(min_value=1, max_value=4, default=1)
    steps = serializers.IntegerField(min_value=1, max_value=150, default=31)
    guidance_scale = serializers.FloatField(min_value=1.0, max_value=20.0, default=7.5)
    strength = serializers.FloatField(min_value=0.0, max_value=1.0, default=1.0)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, allow_null=True, default=None)
    scheduler = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    use_karras_sigmas = FlexibleBoolean(required=False, default=False)
    base64 = FlexibleBoolean(required=False, default=False)
    webhook = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    track_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate_scheduler(self, value):
        if not value:
            return None
        if value not in SCHEDULERS:
            raise serializers.ValidationError(
                f"Unsupported scheduler {value!r}; supported: {', '.join(SCHEDULERS)}."
            )
        return value

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        scheduler = SCHEDULERS.get(data.get("scheduler") or "")
        if scheduler == "DPM++ 2M" and data["use_karras_sigmas"]:
            scheduler = "DPM++ 2M Karras"
        return GenerationParams(
            prompt=data["prompt"],
            negative_prompt=data["negative_prompt"] or "",
            num_inference_steps=data["steps"],
            guidance_scale=data["guidance_scale"],
            denoising_strength=data["strength"],
            seed=data["seed"],
            samples=data["samples"],
            scheduler=scheduler,
            mask_mode="white_inpaints",
        )


def _upload(value: str, field: str) -> SimpleUploadedFile:
    try:
        data = image_input_bytes(value, field=field)
    except RemoteInputError as exc:
        raise services.GenerationError(exc.message, field=exc.field) from None
    return SimpleUploadedFile(field, data)


def answer_body(base: str, generation: Generation, as_base64: bool) -> dict:
    """ModelsLab's success / error / processing JSON for the generation's current state."""
    fetch = base.rstrip("/") + reverse("modelslab-fetch", args=[generation.pk])
    if generation.status == Generation.Status.SUCCEEDED:
        if as_base64:
            output = []
            for image in generation.images.all():
                with image.file.open("rb") as handle:
                    output.append(base64.b64encode(handle.read()).decode())
        else:
            output = presenters.image_urls(generation, base)
        meta = presenters.metadata(generation)
        meta.update(generation.metadata.get("modelslab", {}))
        return {
            "status": "success",
            "generationTime": generation.inference_seconds,
            "id": str(generation.pk),
            "output": output,
            "proxy_links": output if not as_base64 else [],
            "nsfw_content_detected": False,
            "meta": meta,
        }
    if generation.status in (Generation.Status.FAILED, Generation.Status.CANCELLED):
        message = generation.error or "The generation was cancelled."
        return {"status": "error", "id": str(generation.pk), "message": message}
    processing = presenters.img2img_processing(generation, base)
    return {
        "status": "processing",
        "id": str(generation.pk),
        "eta": processing["eta"],
        "message": "The image is being generated; fetch it from fetch_result.",
        "fetch_result": fetch,
        "output": [],
        "future_links": [],
        "meta": presenters.metadata(generation),
    }


def _answer(request: Request, generation: Generation, as_base64: bool) -> Response:
    status = {Generation.Status.FAILED: 422, Generation.Status.CANCELLED: 409}.get(
        generation.status, 200
    )
    return Response(answer_body(base_url(request), generation, as_base64), status=status)


class ModelsLabInpaintView(AsyncAPIView):
    parser_classes = [JSONParser]
    authentication_classes = [BodyKeyAuthentication]

    def _submit(self, request: Request) -> tuple[Generation, bool]:
        serializer = ModelsLabInpaintSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        image = _upload(data["init_image"], "init_image")
        mask = _upload(data["mask_image"], "mask_image")
        submission = services.generation_create(
            user=request.user,
            image_file=image,
            mask_file=mask,
            params=serializer.to_params(),
            client=Generation.Client.MODELSLAB,
            api_key=api_key_of(request),
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            webhook_url=data.get("webhook") or None,
            extra_metadata={
                "modelslab": {
                    key: data.get(key)
                    for key in (
                        "model_id",
                        "width",
                        "height",
                        "track_id",
                        "scheduler",
                        "use_karras_sigmas",
                    )
                }
            },
        )
        return submission.generation, data["base64"]

    def _respond(self, request: Request, generation_id: uuid.UUID, as_base64: bool) -> Response:
        generation = waited_generation(request, generation_id)
        return _answer(request, generation, as_base64)

    @extend_schema(
        request=ModelsLabInpaintSerializer,
        tags=["compat: ModelsLab v6"],
        responses={200: OpenApiResponse(description="success / processing / error")},
    )
    async def post(self, request: Request) -> Response:
        generation, as_base64 = await sync_to_async(self._submit)(request)
        if generation.status not in Generation.TERMINAL:
            await wait_until_finished(generation.pk, settings.IMG2IMG_WAIT_SECONDS)
        return await sync_to_async(self._respond)(request, generation.pk, as_base64)


class ModelsLabFetchView(AsyncAPIView):
    parser_classes = [JSONParser]
    authentication_classes = [BodyKeyAuthentication]

    def _fetch(self, request: Request, generation_id) -> Response:
        generation = selectors.generation_get(user=request.user, generation_id=generation_id)
        if generation is None:
            from django.http import Http404

            raise Http404("No such generation.")
        body = request.data if isinstance(request.data, dict) else {}
        as_base64 = FlexibleBoolean().to_internal_value(body.get("base64"))
        return _answer(request, generation, as_base64)

    @extend_schema(
        request=None,
        tags=["compat: ModelsLab v6"],
        responses={200: OpenApiResponse(description="success / processing / error")},
    )
    async def post(self, request: Request, generation_id) -> Response:
        return await sync_to_async(self._fetch)(request, generation_id)
