"""FooocusAPI: ``POST /v1/engine/generate`` (inpaint / outpaint), ``GET /tasks/<task_id>``,
``POST /v1/tools/generate_mask``.

Kept from FooocusAPI: JSON bodies, ``X-API-KEY``, images as URLs, base64 or data URLs, the
mask rule (a pixel above 127 is inpainted), ``inpaint_additional_prompt``,
``outpaint_selections`` (one third of that side unless ``outpaint_distance_*`` is given),
``image_seed`` (-1 random), ``async_process``, task records, and the PNG itself when the
request's ``Accept`` is ``image/png``. ``generate_mask`` answers a bare base64 PNG; with no
SAM / rembg weights installed it uses GrabCut (a box, points, or by default the centre of the
image) or a colour selection from a point.
"""

from __future__ import annotations

import base64

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import UploadedFile
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ...answers import fooocus
from ...engine import selection
from ...engine.parameters import MAX_OUTPAINT_SIDE
from ...engine.selection import MAX_POINTS
from ...models import Generation
from ...params import GenerationParams
from ...services import mask_models, masks
from ...services import selection as selections
from ...services.library import library_model_named
from ...uploads import IMAGE_FORMATS, image_size
from .. import common
from ..media import image_response
from ..parsers import JSONParser
from ..serializers import (
    LIBRARY_NAME,
    BoundedListField,
    ChoiceField,
    field_for,
    requester,
    validated,
)

SIDES = ("Left", "Right", "Top", "Bottom")


def _distance() -> serializers.IntegerField:
    """An ``outpaint_distance_<side>``: -1 (Fooocus-API's "default") or absent is a third."""
    return serializers.IntegerField(min_value=-1, max_value=MAX_OUTPAINT_SIDE, required=False)


class FooocusJobSerializer(serializers.Serializer):
    """What both Fooocus APIs' inpaint-outpaint requests share (FooocusAPI's
    ``v1/engine/generate``, Fooocus-API's ``image-inpaint-outpaint``), whatever they call
    the picture and its mask (``image_field``, ``mask_field``)."""

    image_field, mask_field = "inpaint_input_image", "inpaint_mask_image_upload"

    prompt = field_for("prompt")
    negative_prompt = field_for("negative_prompt")
    inpaint_additional_prompt = field_for("prompt")
    outpaint_selections = BoundedListField(
        child=ChoiceField(choices=SIDES),
        max_length=len(SIDES),
        what="sides",
        required=False,
        default=list,
    )
    outpaint_distance_left = _distance()
    outpaint_distance_right = _distance()
    outpaint_distance_top = _distance()
    outpaint_distance_bottom = _distance()
    image_seed = field_for("seed", default=-1, allow_null=False)
    image_number = field_for("samples")
    base_model_name = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=255,
        help_text="A model of the library (by name, with or without .safetensors).",
    )
    async_process = serializers.BooleanField(default=False)
    webhook_url = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate(self, data):
        if not data.get(self.mask_field) and not data["outpaint_selections"]:
            raise serializers.ValidationError(
                {self.mask_field: ["Give a mask, outpaint_selections, or both."]}
            )
        return data

    def outpaint(self, width: int, height: int) -> dict | None:
        """One third of that side unless ``outpaint_distance_<side>`` is given."""
        data = self.validated_data
        sides = {}
        for side in data["outpaint_selections"]:
            name = side.lower()
            given = data.get(f"outpaint_distance_{name}", -1)
            third = width // 3 if name in ("left", "right") else height // 3
            sides[name] = third if given < 0 else given
        return sides or None

    def to_params(self, image_size: tuple[int, int]) -> GenerationParams:
        data = self.validated_data
        prompt = ", ".join(p for p in (data["prompt"], data["inpaint_additional_prompt"]) if p)
        return GenerationParams(
            prompt=prompt,
            negative_prompt=data["negative_prompt"],
            seed=None if data["image_seed"] == -1 else data["image_seed"],
            samples=data["image_number"],
            denoising_strength=1.0,
            mask_mode="white_inpaints",
            mask_threshold=127,
            outpaint=self.outpaint(*image_size),
            # Fooocus clients always name a base model; a removal (no prompt) still runs
            # on the server's removal engine, not on the named diffusion model.
            model=(
                library_model_named(
                    data.get("base_model_name"), field="base_model_name", user=requester(self)
                )
                if prompt.strip()
                else None
            ),
        )


class FooocusGenerateSerializer(FooocusJobSerializer):
    """FooocusAPI's ``v1/engine/generate``: the picture and its mask as URLs or base64."""

    inpaint_input_image = serializers.CharField()
    inpaint_mask_image_upload = serializers.CharField(
        required=False, allow_null=True, allow_blank=True
    )


def uploaded(serializer: FooocusJobSerializer, field: str):
    """A request's picture: a file of a multipart body as it came, else fetched or decoded
    (``common.remote_upload``); None when the field is empty."""
    value = serializer.validated_data.get(field)
    if not value:
        return None
    return value if isinstance(value, UploadedFile) else common.remote_upload(value, field)


def fooocus_job(request: Request, serializer: FooocusJobSerializer) -> Generation:
    """The job of either Fooocus API's inpaint-outpaint request: its picture, its mask, the
    outpaint distances from the picture's size."""
    data = serializer.validated_data
    image = uploaded(serializer, serializer.image_field)
    mask = uploaded(serializer, serializer.mask_field)
    size = _image_size(image, serializer.image_field)  # for the outpaint distances
    return common.generation_create_for(
        request,
        Generation.Client.FOOOCUS,
        image,
        mask,
        serializer.to_params(size),
        webhook_url=data.get("webhook_url") or None,
    )


class PNGRenderer(BaseRenderer):
    """Lets ``Accept: image/png`` through content negotiation; the view returns the bytes."""

    media_type = "image/png"
    format = "png"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


def _image_size(upload, field: str) -> tuple[int, int]:
    """The size of an uploaded image, upright, from its header with the upload rules (a 400 if
    it is not one): no pixel is decoded here."""
    size = image_size(upload.read(), field=field, formats=IMAGE_FORMATS)
    upload.seek(0)
    return size


@extend_schema(
    tags=["compat: FooocusAPI"],
    responses={200: OpenApiResponse(description="task record or PNG")},
)
class FooocusGenerateView(common.SubmitAndWaitView):
    renderer_classes = [JSONRenderer, PNGRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        """A client that accepts the PNG still gets an error (a DRF ``Response``) as JSON."""
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), PNGRenderer
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    input_serializer = FooocusGenerateSerializer

    def submit(self, request: Request, serializer: FooocusGenerateSerializer) -> common.Submitted:
        generation = fooocus_job(request, serializer)
        return common.Submitted(generation, wait=not serializer.validated_data["async_process"])

    def answer(self, request: Request, generation: Generation, context):
        record = fooocus.task_record(generation, common.base_url(request))
        if "image/png" in request.headers.get("Accept", ""):
            if generation.status == Generation.Status.SUCCEEDED:
                with generation.images.all()[0].file.open("rb") as handle:
                    return image_response(handle.read())
            return JsonResponse(record)  # not done (or failed): the record says why
        return Response(record)


class FooocusTaskView(APIView):
    @extend_schema(tags=["compat: FooocusAPI"], responses={200: OpenApiResponse()})
    def get(self, request: Request, task_id):
        generation = common.get_generation_or_404(request, task_id)
        return Response(fooocus.task_record(generation, common.base_url(request)))


class FooocusGenerateMaskSerializer(serializers.Serializer):
    """FooocusAPI's generate_mask fields (its defaults), and DreamLayer's box / points / point
    for the classical selections and SAM 2.1."""

    image = serializers.CharField()
    # FooocusAPI's defaults, as its document gives them.
    mask_model = serializers.RegexField(
        LIBRARY_NAME, required=False, allow_blank=True, default="isnet-general-use", max_length=255
    )
    cloth_category = serializers.CharField(required=False, allow_blank=True, default="full")
    dino_prompt_text = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=selection.MAX_TEXT
    )
    sam_model = serializers.RegexField(
        LIBRARY_NAME, required=False, allow_blank=True, default="", max_length=255
    )
    box_threshold = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.3)
    text_threshold = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.25)
    sam_max_detections = serializers.IntegerField(min_value=0, max_value=100, default=0)
    dino_erode_or_dilate = serializers.IntegerField(min_value=-64, max_value=64, default=0)
    dino_debug = serializers.BooleanField(required=False, default=False)
    box = BoundedListField(
        child=serializers.FloatField(), min_length=4, max_length=4, what="numbers", required=False
    )
    points = BoundedListField(
        child=BoundedListField(
            child=serializers.FloatField(), min_length=2, max_length=3, what="numbers"
        ),
        required=False,
        max_length=MAX_POINTS,
        what="points",
    )
    point = BoundedListField(
        child=serializers.FloatField(), min_length=2, max_length=2, what="numbers", required=False
    )
    tolerance = serializers.IntegerField(min_value=0, max_value=255, default=32)


class FooocusGenerateMaskView(AsyncAPIView):
    """``mask_model`` a rembg model (u2net, isnet-general-use, ...): that background model;
    ``sam``: ``dino_prompt_text`` selects through the model ``sam_model`` names: a SAM 3 (the
    instances scored above ``box_threshold``), or a SAM 2.1 with GroundingDINO's boxes (scored
    above ``box_threshold``, the words above ``text_threshold``), the best
    ``sam_max_detections``; without a phrase the SAM 2.1 named takes the box or points (by
    default a box around the middle); ``dino_erode_or_dilate`` grows (or with a negative value
    shrinks) the mask by that many pixels. A named model that is not installed: GrabCut (or
    the colour selection from ``point``), and the ``X-DreamLayer-Fallback`` header says why."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=FooocusGenerateMaskSerializer,
        tags=["compat: FooocusAPI"],
        responses={200: OpenApiResponse(description="base64 PNG, no prefix")},
    )
    def _prepare(self, request: Request):
        """The valid fields, the image (fetched when it is a URL: a thread), the selection the
        fields ask for (None: none) and the user."""
        data = validated(FooocusGenerateMaskSerializer, request.data)
        image = common.remote_upload(data["image"], "image")
        return data, image, _model_selection(image, data), request.user

    def _classical(self, image, data: dict, user) -> bytes:
        image.seek(0)
        return _classical_mask(image, data, user)

    @extend_schema(
        request=FooocusGenerateMaskSerializer,
        tags=["compat: FooocusAPI"],
        responses={200: OpenApiResponse(description="base64 PNG, no prefix")},
    )
    async def post(self, request: Request) -> Response:
        data, image, wanted, user = await sync_to_async(self._prepare)(request)
        png = fallback = None
        if wanted is not None:
            try:
                png = (await selections.selection_make(user=user, image_file=image, **wanted)).png
            except mask_models.MaskModelMissing as exc:
                fallback = exc.message
        if png is None:
            png = await sync_to_async(self._classical)(image, data, user)
        png = await sync_to_async(masks.mask_grow_png)(png, data["dino_erode_or_dilate"], user=user)
        response = Response(base64.b64encode(png).decode())
        if fallback:
            response["X-DreamLayer-Fallback"] = f"grabcut; {fallback}"
        return response


def _default_box(image) -> list[float]:
    """No hint: the object in the middle."""
    width, height = _image_size(image, "image")
    return [width * 0.05, height * 0.05, width * 0.95, height * 0.95]


def _model_selection(image, data) -> dict | None:
    """The selection FooocusAPI's fields ask a mask model for (None: they name none)."""
    mask_model = data["mask_model"].strip()
    if mask_model in selection.REMBG_MODELS or mask_model.startswith("u2net"):
        method, model, prompt = "background", mask_model, selection.Prompt()
    elif mask_model == "sam":
        model = data["sam_model"] or None
        if data["dino_prompt_text"].strip():
            method = "text"
            prompt = selection.Prompt(
                text=data["dino_prompt_text"],
                threshold=data["box_threshold"],
                text_threshold=data["text_threshold"],
                max_detections=data["sam_max_detections"],
            )
        else:
            method = "sam"
            box = data.get("box")
            if box is None and not data.get("points"):
                box = _default_box(image)
            prompt = selection.Prompt(
                points=selection.points_of(data.get("points", [])),
                box=tuple(box) if box else None,
            )
    else:
        return None
    return {"method": method, "model": model, "prompt": prompt, "mask_mode": "white_inpaints"}


def _classical_mask(image, data, user) -> bytes:
    """GrabCut (a box, points, or by default the middle) or a colour selection from a point."""
    box = data.get("box")
    if "point" in data:
        method, point = "flood", data["point"]
    else:
        method, point = "grabcut", None
        if box is None and not data.get("points"):
            box = _default_box(image)
    return masks.mask_generate(
        user=user,
        image_file=image,
        method=method,
        box=[round(v) for v in box] if box else None,
        points=[[round(v) for v in p] for p in data.get("points", [])],
        point=[round(v) for v in point] if point else None,
        tolerance=data["tolerance"],
        mask_mode="white_inpaints",
    )
