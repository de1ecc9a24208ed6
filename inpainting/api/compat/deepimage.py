"""deep-image.ai: ``POST /rest_api/process_result`` (inpainting and uncrop) and
``GET /rest_api/result/<job>``.

Kept: the ``x-api-key`` header, JSON with ``url``; ``width`` + ``height`` with
``fit: {"canvas": "outpainting"}`` uncrops to exactly that size (the image is first scaled to
fit inside it, then the canvas is outpainted); ``background.generate`` with ``description``
(the prompt), ``adapter_type: "inpainting"`` and ``ip_image2`` (the mask: white = inpaint);
answers ``{"status": "complete", "job", "result_url"}`` or ``{"status": "received", "job"}``.
"""

from __future__ import annotations

import uuid

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from PIL import Image
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import selectors, services
from ...models import Generation
from ...params import GenerationParams
from ...remote import RemoteInputError, image_input_bytes
from ...uploads import IMAGE_FORMATS, UploadError, check_dimensions, decode_image, encode_png
from .. import presenters
from ..views import api_key_of, base_url, wait_until_finished, waited_generation

STATUS = {
    Generation.Status.QUEUED: "received",
    Generation.Status.RUNNING: "in_progress",
    Generation.Status.SUCCEEDED: "complete",
    Generation.Status.FAILED: "failed",
    Generation.Status.CANCELLED: "canceled",
}


class GenerateSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=2000, allow_blank=True, default="")
    adapter_type = serializers.CharField(required=False, allow_blank=True, default="")
    ip_image2 = serializers.CharField(required=False, allow_blank=True)


class BackgroundSerializer(serializers.Serializer):
    generate = GenerateSerializer(required=False)


class FitSerializer(serializers.Serializer):
    canvas = serializers.CharField(required=False, allow_blank=True)


class ProcessSerializer(serializers.Serializer):
    url = serializers.CharField()
    width = serializers.IntegerField(required=False, min_value=8, max_value=8192)
    height = serializers.IntegerField(required=False, min_value=8, max_value=8192)
    fit = FitSerializer(required=False)
    background = BackgroundSerializer(required=False)

    def validate(self, data):
        generate = data.get("background", {}).get("generate", {})
        data["uncrop"] = data.get("fit", {}).get("canvas") == "outpainting"
        data["inpaint"] = generate.get("adapter_type") == "inpainting"
        if data["inpaint"] and not generate.get("ip_image2"):
            raise serializers.ValidationError(
                {"ip_image2": ["adapter_type inpainting needs the mask URL in ip_image2."]}
            )
        if data["uncrop"] and not (data.get("width") and data.get("height")):
            raise serializers.ValidationError(
                {"width": ["fit.canvas outpainting needs the target width and height."]}
            )
        if not data["uncrop"] and not data["inpaint"]:
            raise serializers.ValidationError(
                {
                    "fit": [
                        "This server does inpainting (background.generate.adapter_type = "
                        "inpainting with ip_image2) and uncrop (fit.canvas = outpainting "
                        "with width and height)."
                    ]
                }
            )
        return data


def _bytes(value: str, field: str) -> bytes:
    try:
        return image_input_bytes(value, field=field)
    except RemoteInputError as exc:
        raise services.GenerationError(exc.message, field=exc.field) from None


def _fit_inside(data: bytes, width: int, height: int) -> bytes:
    """Scale the image to fit inside ``width`` x ``height`` (the uncrop then fills the rest)."""
    try:
        image = decode_image(data, field="url", formats=IMAGE_FORMATS)
    except UploadError as exc:
        raise services.GenerationError(exc.message, field="url") from None
    scale = min(width / image.width, height / image.height)
    size = (
        min(width, max(1, round(image.width * scale))),
        min(height, max(1, round(image.height * scale))),
    )
    if size != image.size:
        image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return encode_png(image).data


def job_answer(generation: Generation, base: str) -> dict:
    body = {"status": STATUS[generation.status], "job": str(generation.pk)}
    if generation.status == Generation.Status.SUCCEEDED:
        body["result_url"] = presenters.image_urls(generation, base)[0]
    if generation.error:
        body["message"] = generation.error
    return body


class ProcessResultView(AsyncAPIView):
    parser_classes = [JSONParser]

    def _submit(self, request: Request) -> Generation:
        serializer = ProcessSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        generate = data.get("background", {}).get("generate", {})
        if data["uncrop"]:  # the target size is known before anything is fetched or decoded
            try:
                check_dimensions(data["width"], data["height"], field="width")
            except UploadError as exc:
                raise services.GenerationError(exc.message, field=exc.field) from None
        image = _bytes(data["url"], "url")
        outpaint = None
        if data["uncrop"]:
            image = _fit_inside(image, data["width"], data["height"])
            outpaint = {"width": data["width"], "height": data["height"], "anchor": "center"}
        mask = _bytes(generate["ip_image2"], "ip_image2") if data["inpaint"] else None
        params = GenerationParams(
            prompt=generate.get("description", ""),
            denoising_strength=1.0,
            mask_mode="white_inpaints",
            outpaint=outpaint,
        )
        return services.generation_create(
            user=request.user,
            image_file=SimpleUploadedFile("url", image),
            mask_file=SimpleUploadedFile("ip_image2", mask) if mask else None,
            params=params,
            client=Generation.Client.DEEPIMAGE,
            api_key=api_key_of(request),
            idempotency_key=request.headers.get("Idempotency-Key") or None,
        ).generation

    def _respond(self, request: Request, generation_id: uuid.UUID) -> Response:
        generation = waited_generation(request, generation_id)
        return Response(job_answer(generation, base_url(request)))

    @extend_schema(
        request=ProcessSerializer,
        tags=["compat: deep-image.ai"],
        responses={200: OpenApiResponse(description="complete or received")},
    )
    async def post(self, request: Request) -> Response:
        generation = await sync_to_async(self._submit)(request)
        if generation.status not in Generation.TERMINAL:
            await wait_until_finished(generation.pk, settings.IMG2IMG_WAIT_SECONDS)
        return await sync_to_async(self._respond)(request, generation.pk)


class ResultView(APIView):
    @extend_schema(tags=["compat: deep-image.ai"], responses={200: OpenApiResponse()})
    def get(self, request: Request, job) -> Response:
        generation = selectors.generation_get(user=request.user, generation_id=job)
        if generation is None:
            raise Http404("No such job.")
        return Response(job_answer(generation, base_url(request)))
