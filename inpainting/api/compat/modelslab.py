"""ModelsLab v6: ``POST /api/v6/images/inpaint`` and ``POST /api/v6/images/fetch/<id>``; the
same view serves ``realtime/inpaint``, ``image_editing/inpaint``, ``image_editing/
object_removal`` (no prompt: the removal engine) and ``image_editing/outpaint`` (the picture
centred on a ``width`` x ``height`` canvas), each with its own fields (their serializers), and
``realtime/fetch/<id>`` and ``image_editing/fetch/<id>`` are the same fetch.

Kept from ModelsLab: JSON in and out, ``key`` in the body (headers work too), images as URLs
or base64, white = inpaint, ``samples`` up to 4, ``seed`` null = random, its scheduler class
names, ``base64`` output, and the ``success`` / ``processing`` (with ``fetch_result``) /
``error`` answers. Differences: ``id`` is a UUID string; ``model_id`` picks a model of the
library (by name, with or without ``.safetensors``; a name it lacks is an error that lists
them; with an empty library it is only recorded and the server's model runs); ``width`` and
``height`` are recorded and the output keeps the input's size.
``webhook`` gets the final answer (with ``track_id``) as a signed POST.
"""

from __future__ import annotations

import re

from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ApiKeyAuthentication, no_key_message, user_for_key
from accounts.schema import ApiKeyScheme
from accounts.throttles import request_address

from ...answers import modelslab
from ...errors import echoed
from ...models import Generation
from ...params import GenerationParams
from ...services.additions import library_ip_adapter_name
from ...services.library import library_job_family, library_model_named
from .. import common
from ..parsers import JSONParser
from ..serializers import field_for, requester

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
#: Kept in the job's metadata as sent (on the inpaint routes not acted on, see the module
#: docstring; the outpaint route's width and height are its canvas).
RECORDED = ("model_id", "width", "height", "track_id", "scheduler", "use_karras_sigmas", "strength")


#: How much of a body's start is searched for its ``key`` before anything parses the body.
KEY_SCAN_BYTES = 64 * 1024
#: ``"key": "..."``: where ModelsLab's documents and clients put it, first or near it.
_BODY_KEY = re.compile(rb'"key"\s*:\s*"([^"\\]{1,256})"')


class BodyKeyAuthentication(ApiKeyAuthentication):
    """ModelsLab clients put the key in the JSON body as ``key``; headers work as well. The
    key is found by a scan of the body's first KEY_SCAN_BYTES, not by parsing the body, so a
    wrong key costs no parse whatever follows it; a body whose key comes later is parsed
    within the JSON budget (``parsers.json_loads``) to find it."""

    missing_key_message = no_key_message("'key' in the JSON body")

    def authenticate(self, request):
        from_header = super().authenticate(request)
        if from_header is not None:
            return from_header
        found = _BODY_KEY.search(request.body[:KEY_SCAN_BYTES])
        if found is not None:
            key = found.group(1).decode("utf-8", "replace")
        else:
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
    """``images/inpaint`` (ModelsLab's community models)."""

    #: The request's picture fields: the picture, and its mask (None: the route takes none).
    image_field, mask_field = "init_image", "mask_image"
    #: The steps when a request gives none: ModelsLab's default on this route (None: the
    #: model's own).
    default_steps: int | None = 31

    init_image = serializers.CharField()
    mask_image = serializers.CharField()
    prompt = field_for("prompt")
    negative_prompt = field_for("negative_prompt", allow_null=True)
    model_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    width = serializers.IntegerField(required=False, allow_null=True, min_value=8, max_value=4096)
    height = serializers.IntegerField(required=False, allow_null=True, min_value=8, max_value=4096)
    samples = field_for("samples")
    steps = field_for("num_inference_steps", default=None)
    # The same, as ModelsLab's later documents and its SDK (modelslab-py) name it.
    num_inference_steps = field_for("num_inference_steps", default=None)
    guidance_scale = field_for("guidance_scale")
    strength = field_for("denoising_strength", default=1.0)
    seed = field_for("seed", min_value=0)  # null = random; no -1 here
    scheduler = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    # ModelsLab's own default is 2, for the models that have CLIP layers to skip (to_params).
    clip_skip = field_for("clip_skip", allow_null=True, default=None)
    lora_model = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    lora_strength = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    use_karras_sigmas = FlexibleBoolean(required=False, default=False)
    base64 = FlexibleBoolean(required=False, default=False)
    webhook = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    track_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    # A reference picture through an IP-Adapter of the library (named as its folder is).
    ip_adapter_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=255
    )
    ip_adapter_scale = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )
    ip_adapter_image = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate(self, data):
        if bool(data.get("ip_adapter_id")) != bool(data.get("ip_adapter_image")):
            field = "ip_adapter_image" if data.get("ip_adapter_id") else "ip_adapter_id"
            raise serializers.ValidationError(
                {field: ["ip_adapter_id and ip_adapter_image go together: the adapter and the "
                         "picture it reads."]}
            )  # fmt: skip
        return data

    def validate_scheduler(self, value):
        if not value:
            return None
        if value not in SCHEDULERS:
            raise serializers.ValidationError(
                f"Unsupported scheduler {echoed(value)}; supported: {', '.join(SCHEDULERS)}."
            )
        return value

    @staticmethod
    def _loras(data) -> list[dict] | None:
        """``lora_model`` (comma-separated names) with ``lora_strength`` (one weight for
        all, or comma-separated, one each; 1 when absent)."""
        names = [n.strip() for n in (data.get("lora_model") or "").split(",") if n.strip()]
        if not names:
            return None
        raw = [w.strip() for w in str(data.get("lora_strength") or "").split(",") if w.strip()]
        try:
            weights = [float(w) for w in raw] or [1.0]
        except ValueError:
            raise serializers.ValidationError(
                {"lora_strength": [f"lora_strength must be numbers, not {echoed(raw)}."]}
            ) from None
        if len(weights) == 1:
            weights *= len(names)
        if len(weights) != len(names):
            raise serializers.ValidationError(
                {"lora_strength": [f"{len(names)} LoRAs but {len(weights)} strengths."]}
            )
        return [{"name": n, "weight": w} for n, w in zip(names, weights, strict=True)]

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        scheduler = SCHEDULERS.get(data.get("scheduler") or "")
        if scheduler == "DPM++ 2M" and data["use_karras_sigmas"]:
            scheduler = "DPM++ 2M Karras"
        model = library_model_named(data.get("model_id"), field="model_id", user=requester(self))
        clip_skip = data.get("clip_skip")
        if clip_skip is None:
            clip_skip = 2 if library_job_family(model).capabilities.clip_skip else 1
        steps = next(
            (n for n in (data["steps"], data["num_inference_steps"]) if n is not None),
            self.default_steps,
        )
        return GenerationParams(
            prompt=data["prompt"],
            negative_prompt=data["negative_prompt"] or "",
            num_inference_steps=steps,
            guidance_scale=data["guidance_scale"],
            denoising_strength=data["strength"],
            seed=data["seed"],
            samples=data["samples"],
            scheduler=scheduler,
            clip_skip=clip_skip,
            loras=self._loras(data),
            mask_mode="white_inpaints",
            model=model,
            ip_adapter=self._ip_adapter(data),
        )

    @staticmethod
    def _ip_adapter(data) -> dict | None:
        if not data.get("ip_adapter_id"):
            return None
        scale = data.get("ip_adapter_scale")
        return {
            "name": library_ip_adapter_name(data["ip_adapter_id"], field="ip_adapter_id"),
            "scale": 1.0 if scale is None else scale,
        }


class ModelsLabEditingInpaintSerializer(ModelsLabInpaintSerializer):
    """``image_editing/inpaint``: the same fields, 20 steps unless told (its default)."""

    default_steps = 20


class ModelsLabRealtimeInpaintSerializer(ModelsLabInpaintSerializer):
    """``realtime/inpaint``: the same fields; its steps the model's own unless told."""

    default_steps = None


class ModelsLabDeliverySerializer(serializers.Serializer):
    """What every ModelsLab route takes about its answer: base64 output, a webhook."""

    base64 = FlexibleBoolean(required=False, default=False)
    webhook = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    track_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class ModelsLabObjectRemovalSerializer(ModelsLabDeliverySerializer):
    """``image_editing/object_removal``: the picture and the mask of what to remove (white),
    no prompt: erase mode (the best remover here, the mask grown by ``dilate_pixels``)."""

    image_field, mask_field = "init_image", "mask_image"
    init_image = serializers.CharField()
    mask_image = serializers.CharField()
    dilate_pixels = field_for("dilate_pixels")  # DreamLayer's, not ModelsLab's

    def to_params(self) -> GenerationParams:
        return GenerationParams(
            prompt="",
            mask_mode="white_inpaints",
            mode="erase",
            dilate_pixels=self.validated_data["dilate_pixels"],
        )


class ModelsLabOutpaintSerializer(ModelsLabDeliverySerializer):
    """``image_editing/outpaint``: the picture extended to ``width`` x ``height``, centred;
    ``overlap_width`` pixels of its edge blended into the new area (the seam's feather)."""

    image_field, mask_field = "image", None
    image = serializers.CharField()
    prompt = field_for("prompt")
    negative_prompt = field_for("negative_prompt", allow_null=True)
    width = serializers.IntegerField(min_value=8, max_value=4096, default=512)
    height = serializers.IntegerField(min_value=8, max_value=4096, default=512)
    overlap_width = field_for("mask_blur", default=64)  # modelslab-py's default
    num_inference_steps = field_for("num_inference_steps", default=20)
    guidance_scale = field_for("guidance_scale")
    seed = field_for("seed", min_value=0)

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        return GenerationParams(
            prompt=data["prompt"],
            negative_prompt=data["negative_prompt"] or "",
            num_inference_steps=data["num_inference_steps"],
            guidance_scale=data["guidance_scale"],
            seed=data["seed"],
            mask_blur=data["overlap_width"],
            outpaint={"width": data["width"], "height": data["height"], "anchor": "center"},
        )


def _answer(request: Request, generation: Generation, as_base64: bool) -> Response:
    status = {Generation.Status.FAILED: 422, Generation.Status.CANCELLED: 409}.get(
        generation.status, 200
    )
    return Response(
        modelslab.answer_body(common.base_url(request), generation, as_base64), status=status
    )


@extend_schema(
    tags=["compat: ModelsLab v6"],
    responses={200: OpenApiResponse(description="success / processing / error")},
)
class ModelsLabInpaintView(common.SubmitAndWaitView):
    authentication_classes = [BodyKeyAuthentication]

    input_serializer = ModelsLabInpaintSerializer

    def submit(self, request: Request, serializer) -> common.Submitted:
        data = serializer.validated_data
        picture, masked = serializer.image_field, serializer.mask_field
        image = common.remote_upload(data[picture], picture)
        mask = common.remote_upload(data[masked], masked) if masked else None
        reference = data.get("ip_adapter_image")
        references = (common.remote_upload(reference, "ip_adapter_image"),) if reference else ()
        generation = common.generation_create_for(
            request,
            Generation.Client.MODELSLAB,
            image,
            mask,
            serializer.to_params(),
            reference_files=references,
            webhook_url=data.get("webhook") or None,
            extra_metadata={
                "modelslab": {
                    "route": request.path.split("/v6/", 1)[-1],
                    **{key: data.get(key) for key in RECORDED},
                }
            },
        )
        return common.Submitted(generation, context=data["base64"])

    def answer(self, request: Request, generation: Generation, as_base64: bool) -> Response:
        return _answer(request, generation, as_base64)


class ModelsLabFetchView(APIView):
    parser_classes = [JSONParser]
    authentication_classes = [BodyKeyAuthentication]

    @extend_schema(
        request=None,
        tags=["compat: ModelsLab v6"],
        responses={200: OpenApiResponse(description="success / processing / error")},
    )
    def post(self, request: Request, generation_id) -> Response:
        generation = common.get_generation_or_404(request, generation_id)
        body = request.data if isinstance(request.data, dict) else {}
        as_base64 = FlexibleBoolean().to_internal_value(body.get("base64"))
        return _answer(request, generation, as_base64)
