"""The "SD Inpainting API": ``POST /sd-inpaint/inpaint`` and ``GET /sd-inpaint/health``.

Its conventions are kept: white = inpaint, black = keep, gray = blend; defaults 50 steps,
guidance 7.5, seed 42; the answer is the PNG itself; a mask of another size is a 400. The
original had no authentication: clients add ``Authorization: Api-Key`` (or ``X-API-Key``).
"""

from __future__ import annotations

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from ...answers import native
from ...conf import engine_config
from ...models import Generation
from ...params import GenerationParams
from .. import common
from ..media import image_response
from ..serializers import field_for

SERVICE_NAME = "stable-diffusion-inpaint"


class SdInpaintSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="Input image (JPEG, PNG, WebP, AVIF or HEIC).")
    mask = serializers.FileField(help_text="PNG: white = inpaint, black = keep, gray = blend.")
    prompt = field_for("prompt", default=empty, required=True, allow_blank=False)
    negative_prompt = field_for("negative_prompt")
    # The service's own defaults: 50 steps, seed 42 (always reproducible).
    num_inference_steps = field_for("num_inference_steps", default=50)
    guidance_scale = field_for("guidance_scale")
    seed = field_for("seed", default=42, min_value=0, allow_null=False)

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        return GenerationParams(
            prompt=data["prompt"],
            negative_prompt=data["negative_prompt"],
            num_inference_steps=data["num_inference_steps"],
            guidance_scale=data["guidance_scale"],
            seed=data["seed"],
            denoising_strength=1.0,  # the service repaints the masked area completely
            mask_mode="white_inpaints",
            mask_blur=0,  # the service uses the mask as given: gray blends, nothing more
            exact_mask_size=True,
        )


@extend_schema(
    request={"multipart/form-data": SdInpaintSerializer},
    responses={(200, "image/png"): OpenApiResponse(description="the inpainted image")},
    tags=["compat: SD inpainting API"],
)
class SdInpaintView(common.SubmitAndWaitView):
    parser_classes = [MultiPartParser, FormParser]

    input_serializer = SdInpaintSerializer

    def submit(self, request: Request, serializer: SdInpaintSerializer) -> common.Submitted:
        data = serializer.validated_data
        image, mask = data["image"], data["mask"]
        generation = common.generation_create_for(
            request, Generation.Client.SD_INPAINT, image, mask, serializer.to_params()
        )
        return common.Submitted(generation)

    def answer(self, request: Request, generation: Generation, context):
        if generation.status != Generation.Status.SUCCEEDED:
            return common.unfinished_response(generation, common.base_url(request))
        image = generation.images.all()[0]
        with image.file.open("rb") as handle:
            data = handle.read()
        response = image_response(data)
        response["X-Generation-Id"] = str(generation.pk)
        response["X-Seed"] = str(image.seed)
        # The answer is the PNG: the fields the engine that ran did not follow (a fill engine:
        # the prompt, the steps, the guidance) go in a header, comma-separated.
        not_used = dict.fromkeys(w["field"] for w in native.warnings(generation))
        if not_used:
            response["X-Warnings"] = ", ".join(not_used)
        return response


class SdInpaintHealthView(AsyncAPIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    @extend_schema(tags=["compat: SD inpainting API"], responses={200: OpenApiResponse()})
    async def get(self, request: Request) -> Response:
        # The configuration reads whether the library holds a diffusion model: a thread's work.
        config = await sync_to_async(engine_config, thread_sensitive=False)()
        return Response(
            {
                "status": "healthy",
                "service": SERVICE_NAME,
                "model": config.model_name(config.default()),
                "engine": config.default(),
                # No diffusion model here: the model is a fill engine's, which ignores prompts.
                "fill_engine": config.fill_engine() is not None,
            }
        )
