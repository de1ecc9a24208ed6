"""The picture tools: ``extra-single-image`` and ``extra-batch-images`` (upscaling) and
``png-info``."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpResponseBase, StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ....answers import a1111
from ....engine.upscale import MAX_SIDE
from ....errors import ClientError, echoed
from ....models import Generation
from ....services import images
from ....services.upscale import (
    UpscaleAsk,
    upscale_job_create,
    upscale_output_answer,
    upscale_pngs,
)
from ....services.upscalers import library_upscaler_named
from ... import common
from ...serializers import (
    BoundedListField,
    ChoiceField,
    validated,
)
from .base import TAGS, A1111Api, A1111View


class PngInfoSerializer(serializers.Serializer):
    image = serializers.CharField()


class A1111PngInfoView(A1111View):
    """The generation parameters an image carries (DreamLayer's and A1111's PNGs both)."""

    @extend_schema(
        tags=TAGS, request=PngInfoSerializer, responses={200: OpenApiResponse(description="info")}
    )
    def post(self, request: Request) -> Response:
        image = validated(PngInfoSerializer, request.data)["image"]
        data = common.remote_upload(image, "image").read()
        return Response(a1111.png_info(images.png_texts(data)))


#: Pictures one ``extra-batch-images`` request may carry.
MAX_EXTRAS_BATCH = 8


class ExtrasSerializer(serializers.Serializer):
    """The fields of A1111's extras requests that matter here (its defaults); face restoration
    and a second upscaler do not run, and the answer's ``html_info`` says so."""

    resize_mode = ChoiceField(choices=[0, 1], default=0)
    upscaling_resize = serializers.FloatField(default=2.0)
    upscaling_resize_w = serializers.IntegerField(default=512, min_value=1, max_value=MAX_SIDE)
    upscaling_resize_h = serializers.IntegerField(default=512, min_value=1, max_value=MAX_SIDE)
    upscaling_crop = serializers.BooleanField(default=True)
    upscaler_1 = serializers.CharField(default="None", allow_blank=True, max_length=255)
    upscaler_2 = serializers.CharField(default="None", allow_blank=True, max_length=255)
    extras_upscaler_2_visibility = serializers.FloatField(default=0)
    gfpgan_visibility = serializers.FloatField(default=0)
    codeformer_visibility = serializers.FloatField(default=0)

    def validate_upscaler_1(self, value: str) -> str:
        if a1111.upscaler_method(value) is None and library_upscaler_named(value) is None:
            raise serializers.ValidationError(
                f"Unknown upscaler {echoed(value)}; GET /sdapi/v1/upscalers lists "
                f"the upscalers here ({', '.join(a1111.UPSCALERS)} and the library's models)."
            )
        return value

    def validate(self, attrs: dict) -> dict:
        # The library upscaler (a super-resolution model) upscaler_1 names, if any: it runs
        # as a job on a worker; a resampler (None here) runs where the request is answered.
        named = a1111.upscaler_method(attrs["upscaler_1"]) is None
        attrs["model"] = library_upscaler_named(attrs["upscaler_1"]) if named else None
        return attrs

    def ask(self) -> UpscaleAsk:
        data = self.validated_data
        method = a1111.upscaler_method(data["upscaler_1"]) or "lanczos"
        if data["resize_mode"] == 1:
            return UpscaleAsk(
                width=data["upscaling_resize_w"],
                height=data["upscaling_resize_h"],
                crop=data["upscaling_crop"],
                method=method,
            )
        return UpscaleAsk(factor=data["upscaling_resize"], method=method)

    def info(self) -> str:
        """A1111's ``html_info``: what ran, and what was asked that does not run here."""
        data = self.validated_data
        ignored = [
            label
            for label, on in (
                ("face restoration (GFPGAN)", data["gfpgan_visibility"] > 0),
                ("face restoration (CodeFormer)", data["codeformer_visibility"] > 0),
                ("the second upscaler", data["extras_upscaler_2_visibility"] > 0),
            )
            if on
        ]
        text = f"Upscaler: {data['upscaler_1'] or 'None'}"
        return text + (f"; not run here: {', '.join(ignored)}" if ignored else "")


class ExtrasSingleSerializer(ExtrasSerializer):
    image = serializers.CharField()


class ExtrasImageSerializer(serializers.Serializer):
    data = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)


class ExtrasBatchSerializer(ExtrasSerializer):
    imageList = BoundedListField(  # noqa: N815 - A1111's name
        child=ExtrasImageSerializer(), max_length=MAX_EXTRAS_BATCH, what="images"
    )


class A1111ExtraSingleImageView(A1111Api, common.SubmitAndWaitView):
    """``POST /sdapi/v1/extra-single-image``: one picture upscaled. A resampler (Lanczos,
    nearest) runs here; a super-resolution model of the library runs as an upscale job on a
    worker (in the history), waited for like img2img. The output size is checked against
    UPSCALE_MAX_PIXELS before the picture is decoded."""

    input_serializer = ExtrasSingleSerializer
    blocking = True

    def _start(self, request: Request) -> HttpResponseBase | common.Submitted:
        """A resampler's answer, made here; or, for a library model, the job it runs as. The
        upscaler is known before the picture is read."""
        serializer = ExtrasSingleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = common.remote_upload(serializer.validated_data["image"], "image")
        model = serializer.validated_data["model"]
        if model is None:
            made = upscale_pngs([image.read()], serializer.ask(), field="image", user=request.user)
            return _extras_answer(serializer.info(), made.pngs, single=True, done=made.release)
        generation = upscale_job_create(
            common.sender(request, Generation.Client.A1111),
            ask=serializer.ask(),
            upscaler=model.name,
            image_file=image,
        )
        return common.Submitted(generation, context=serializer.info())

    @extend_schema(
        tags=TAGS,
        request=ExtrasSingleSerializer,
        responses={200: OpenApiResponse(description="{html_info, image}")},
    )
    async def post(self, request: Request, *args, **kwargs):
        started = await sync_to_async(self._start)(request)
        if isinstance(started, HttpResponseBase):  # a resampler's answer, made here
            return started
        return await self.finish(request, started)

    def answer(self, request: Request, generation: Generation, info: str) -> Response:
        problem = common.unfinished(generation, blocking=True)
        if problem is not None:
            code, message = problem
            return Response(a1111.error_body(code, message, {}), status=code)
        made = upscale_output_answer(generation, user=request.user)
        return _extras_answer(info, made.pngs, single=True, done=made.release)


class A1111ExtraBatchImagesView(A1111View):
    """``POST /sdapi/v1/extra-batch-images``: each picture of ``imageList`` upscaled alike by a
    resampler (a super-resolution model upscales one picture a request: extra-single-image)."""

    @extend_schema(
        tags=TAGS,
        request=ExtrasBatchSerializer,
        responses={200: OpenApiResponse(description="{html_info, images}")},
    )
    def post(self, request: Request) -> Response:
        serializer = ExtrasBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = serializer.validated_data["model"]
        if model is not None:
            raise ClientError(
                f"{model.name} is a super-resolution model: it upscales one picture a "
                "request here (POST /sdapi/v1/extra-single-image, as a job on a worker); a "
                "batch runs Lanczos or Nearest.",
                field="upscaler_1",
            )
        ask = serializer.ask()
        pictures = [
            common.remote_upload(item["data"], "imageList").read()
            for item in serializer.validated_data["imageList"]
        ]
        made = upscale_pngs(pictures, ask, field="imageList", user=request.user)
        return _extras_answer(serializer.info(), made.pngs, single=False, done=made.release)


def _extras_answer(
    info: str, pngs: list[bytes], *, single: bool, done=None
) -> StreamingHttpResponse:
    """The extras answer streamed from the PNG bytes (``a1111.ExtrasAnswer``); ``done()`` once
    it is sent, or closed because the client went away: the bytes it held are let go then."""
    answer = a1111.ExtrasAnswer(info, pngs, single=single, done=done)
    response = StreamingHttpResponse(answer, content_type="application/json")
    response["Content-Length"] = str(answer.length)
    return response
