"""deep-image.ai: ``POST /rest_api/process_result`` (inpainting and uncrop) and
``GET /rest_api/result/<job>``.

Kept: the ``x-api-key`` header, JSON with ``url``; ``width`` + ``height`` with
``fit: {"canvas": "outpainting"}`` uncrops to exactly that size (the image is first scaled to
fit inside it, then the canvas is outpainted); ``background.generate`` with ``description``
(the prompt), ``adapter_type: "inpainting"`` and ``ip_image2`` (the mask: white = inpaint);
answers ``{"status": "complete", "job", "result_url"}`` or ``{"status": "received", "job"}``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ...answers import deepimage
from ...engine.parameters import MAX_OUTPAINT_TARGET
from ...models import Generation
from ...params import GenerationParams
from ...services import images
from ...uploads import check_dimensions
from .. import common
from ..serializers import field_for


class GenerateSerializer(serializers.Serializer):
    description = field_for("prompt")
    adapter_type = serializers.CharField(required=False, allow_blank=True, default="")
    ip_image2 = serializers.CharField(required=False, allow_blank=True)


class BackgroundSerializer(serializers.Serializer):
    generate = GenerateSerializer(required=False)


class FitSerializer(serializers.Serializer):
    canvas = serializers.CharField(required=False, allow_blank=True)


class ProcessSerializer(serializers.Serializer):
    url = serializers.CharField()
    width = serializers.IntegerField(required=False, min_value=8, max_value=MAX_OUTPAINT_TARGET)
    height = serializers.IntegerField(required=False, min_value=8, max_value=MAX_OUTPAINT_TARGET)
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


@extend_schema(
    tags=["compat: deep-image.ai"],
    responses={200: OpenApiResponse(description="complete or received")},
)
class ProcessResultView(common.SubmitAndWaitView):
    input_serializer = ProcessSerializer

    def submit(self, request: Request, serializer: ProcessSerializer) -> common.Submitted:
        data = serializer.validated_data
        generate = data.get("background", {}).get("generate", {})
        outpaint = None
        if data["uncrop"]:  # the target size is known before anything is fetched or decoded
            check_dimensions(data["width"], data["height"], field="width")
            outpaint = {"width": data["width"], "height": data["height"], "anchor": "center"}
        image = common.remote_upload(data["url"], "url")
        if data["uncrop"]:
            image = images.image_fitted_inside(
                image, data["width"], data["height"], field="url", user=request.user
            )
        mask = common.remote_upload(generate["ip_image2"], "ip_image2") if data["inpaint"] else None
        params = GenerationParams(
            prompt=generate.get("description", ""),
            denoising_strength=1.0,
            mask_mode="white_inpaints",
            outpaint=outpaint,
        )
        generation = common.generation_create_for(
            request, Generation.Client.DEEPIMAGE, image, mask, params
        )
        return common.Submitted(generation)

    def answer(self, request: Request, generation: Generation, context) -> Response:
        return Response(deepimage.job_answer(generation, common.base_url(request)))


class ResultView(APIView):
    @extend_schema(tags=["compat: deep-image.ai"], responses={200: OpenApiResponse()})
    def get(self, request: Request, job) -> Response:
        generation = common.get_generation_or_404(request, job)
        return Response(deepimage.job_answer(generation, common.base_url(request)))
