"""Thin API views: parse, call a service or selector, present."""

from __future__ import annotations

import asyncio
import uuid

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import Http404, HttpResponseRedirect
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey

from .. import selectors, services
from ..conf import engine_config, model_status
from ..engine import MaskOptions
from ..engine.schedulers import SCHEDULERS, scheduler_names
from ..models import Generation
from ..progress import EVENT_TYPE, generation_group
from . import presenters
from .docs import GenerationDoc
from .media import image_response
from .serializers import (
    Img2ImgSerializer,
    MaskGenerateSerializer,
    MaskPreviewSerializer,
    merge_form_and_params,
)

TERMINAL_EVENTS = {"completed", "failed", "cancelled", "deleted"}


def base_url(request) -> str:
    return request.build_absolute_uri("/")


def get_generation_or_404(request: Request, generation_id, change: bool = False) -> Generation:
    generation = selectors.generation_get(
        user=request.user, generation_id=generation_id, change=change
    )
    if generation is None:
        raise Http404("No such generation.")
    return generation


RECHECK_SECONDS = 5.0  # how often a waiter asks the database, in case an event was lost
WAIT_TICK = "dreamlayer.wait_tick"


async def wait_until_finished(generation_id: uuid.UUID, timeout: float) -> None:
    """Wait for the job's terminal event on the channel layer (no polling, no thread held).

    The receive is never cancelled: at each recheck time the waiter sends itself a tick on its
    own plain channel. Cancelling a channels-redis receive can swallow the cancellation inside
    redis-py and leave the receive looping for ever, and a process-specific channel
    (``new_channel()``) shares one receive lock with every other waiter of the process.
    """
    layer = get_channel_layer()
    channel = f"dreamlayer.wait.{uuid.uuid4().hex}"
    group = generation_group(generation_id)
    await layer.group_add(group, channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks: set[asyncio.Task] = set()

    def tick() -> None:
        task = loop.create_task(layer.send(channel, {"type": WAIT_TICK}))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    alarm = None
    try:
        while True:
            # The job may have finished before we subscribed, or its event may have been lost
            # while Redis was down: the database has the last word.
            state = await sync_to_async(selectors.generation_status)(generation_id=generation_id)
            remaining = deadline - loop.time()
            if state is None or state in Generation.TERMINAL or remaining <= 0:  # None: deleted
                return
            alarm = loop.call_later(min(remaining, RECHECK_SECONDS), tick)
            while True:
                message = await layer.receive(channel)
                if message.get("type") == WAIT_TICK:
                    break
                if message.get("type") == EVENT_TYPE and (
                    message["event"].get("type") in TERMINAL_EVENTS
                ):
                    return
    finally:
        if alarm is not None:
            alarm.cancel()
        await layer.group_discard(group, channel)


def waited_generation(request: Request, generation_id: uuid.UUID) -> Generation:
    """The generation a request waited on; 404 if it was deleted meanwhile."""
    generation = selectors.generation_get(user=request.user, generation_id=generation_id)
    if generation is None:
        raise Http404("The generation was deleted while this request waited for it.")
    return generation


def api_key_of(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def unfinished_response(generation: Generation, base: str) -> Response:
    """The answer for a waited-on job that did not succeed: failed (422), cancelled (409), or
    still running after the wait limit (202 with where to fetch it)."""
    if generation.status == Generation.Status.FAILED:
        body = {
            "status": "error",
            "id": str(generation.pk),
            "message": generation.error,
            "errors": {},
        }
        return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if generation.status == Generation.Status.CANCELLED:
        body = {
            "status": "error",
            "id": str(generation.pk),
            "message": "The generation was cancelled.",
            "errors": {},
        }
        return Response(body, status=status.HTTP_409_CONFLICT)
    return Response(
        presenters.img2img_processing(generation, base), status=status.HTTP_202_ACCEPTED
    )


class Img2ImgView(AsyncAPIView):
    """``POST /api/img2img``: the DreamLayer inpainting API (white kept, black inpainted)."""

    parser_classes = [MultiPartParser, FormParser]

    def _submit(self, request: Request) -> tuple[Generation, bool]:
        data = merge_form_and_params(request.data)
        data.update(
            {name: request.FILES[name] for name in ("image", "mask") if name in request.FILES}
        )
        serializer = Img2ImgSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        api_key = api_key_of(request)
        submission = services.generation_create(
            user=request.user,
            image_file=serializer.validated_data["image"],
            mask_file=serializer.validated_data.get("mask"),
            params=serializer.to_params(),
            # A browser session is the studio; a key is a script or another service.
            client=Generation.Client.API if api_key else Generation.Client.WEB,
            api_key=api_key,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            webhook_url=serializer.validated_data.get("webhook_url") or None,
        )
        return submission.generation, serializer.validated_data["wait"]

    def _respond(self, request: Request, generation_id: uuid.UUID, wait: bool) -> Response:
        generation = waited_generation(request, generation_id)
        base = base_url(request)
        if not wait:  # wait=false always answers 202 at once; fetch_result has the outcome
            return Response(
                presenters.img2img_processing(generation, base), status=status.HTTP_202_ACCEPTED
            )
        if generation.status == Generation.Status.SUCCEEDED:
            return Response(presenters.img2img_success(generation, base))
        return unfinished_response(generation, base)

    @extend_schema(
        request={"multipart/form-data": Img2ImgSerializer},
        responses={
            200: OpenApiResponse(description="Finished: status success, images, metadata."),
            202: OpenApiResponse(description="Still processing: id, eta, fetch_result, websocket."),
            400: OpenApiResponse(description="Invalid input (error shape)."),
            422: OpenApiResponse(description="The generation failed."),
        },
    )
    async def post(self, request: Request) -> Response:
        generation, wait = await sync_to_async(self._submit)(request)
        if wait and generation.status not in Generation.TERMINAL:
            await wait_until_finished(generation.pk, settings.IMG2IMG_WAIT_SECONDS)
        return await sync_to_async(self._respond)(request, generation.pk, wait)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("all", bool, description="staff: everyone's generations")]
    ),
    destroy=extend_schema(responses={204: None}),
    cancel=extend_schema(request=None),
    rerun=extend_schema(request=None, responses={201: GenerationDoc}),
)
class GenerationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your generations (staff: everyone's with ``?all=1``), newest first."""

    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    serializer_class = GenerationDoc  # documents the shape; presenters build the responses

    def get_queryset(self):
        include_all = self.request.query_params.get("all") in ("1", "true")
        return selectors.generation_list(user=self.request.user, include_all=include_all)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        base = base_url(request)
        return self.get_paginated_response([presenters.detail(g, base) for g in page])

    def retrieve(self, request: Request, pk=None) -> Response:
        return Response(presenters.detail(get_generation_or_404(request, pk), base_url(request)))

    def destroy(self, request: Request, pk=None) -> Response:
        services.generation_delete(generation=get_generation_or_404(request, pk, change=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        generation = get_generation_or_404(request, pk, change=True)
        services.generation_cancel(generation=generation)
        generation.refresh_from_db()
        return Response(presenters.detail(generation, base_url(request)))

    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk=None) -> Response:
        generation = get_generation_or_404(request, pk, change=True)
        new = services.generation_rerun(generation=generation, user=request.user)
        new = selectors.generation_get(user=request.user, generation_id=new.pk)
        return Response(presenters.detail(new, base_url(request)), status=status.HTTP_201_CREATED)


class SchedulerListView(APIView):
    """The scheduler names a request may give (diffusers engine; classical ignores them)."""

    @extend_schema(
        responses=inline_serializer(
            "Schedulers",
            {
                "default": serializers.CharField(allow_null=True),
                "schedulers": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        items = [
            {"name": name, "class": SCHEDULERS[name][0], **SCHEDULERS[name][1]}
            for name in scheduler_names()
        ]
        return Response(
            {
                "default": None,
                "schedulers": items,
                "engines": {"diffusers": [i["name"] for i in items], "classical": []},
            }
        )


class MaskGenerateView(APIView):
    """A mask from a box, points or a colour, without model weights (GrabCut, flood fill)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": MaskGenerateSerializer},
        responses={(200, "image/png"): OpenApiResponse(description="mask PNG")},
    )
    def post(self, request: Request):
        serializer = MaskGenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        png = services.mask_generate(
            image_file=data["image"],
            method=data["method"],
            box=data.get("box"),
            points=data.get("points", []),
            point=data.get("point"),
            tolerance=data["tolerance"],
            mask_mode=data["mask_mode"],
        )
        return image_response(png)


class MaskPreviewView(APIView):
    """The effective mask (white = regenerated) for a mask file, an image size and options."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": MaskPreviewSerializer},
        responses={(200, "image/png"): OpenApiResponse(description="grayscale PNG")},
    )
    def post(self, request: Request):
        serializer = MaskPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        png = services.mask_preview(
            mask_file=data["mask"],
            size=(data["width"], data["height"]),
            options=MaskOptions(
                mode=data["mask_mode"],
                invert=data["invert_mask"],
                blur=data["mask_blur"],
                grow=data["mask_grow"],
            ),
        )
        return image_response(png)


def _file_response(field_file, download_name: str):
    if settings.AWS_STORAGE_BUCKET_NAME:
        return HttpResponseRedirect(field_file.url)  # a short-lived signed URL
    return image_response(field_file.open("rb"), filename=download_name, cache=True)


class GenerationFileView(APIView):
    """The image bytes of a generation: owner or staff only (others get 404)."""

    kind = "output"

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="PNG bytes")})
    def get(self, request: Request, pk, index: int | None = None):
        generation = get_generation_or_404(request, pk)
        if self.kind == "input":
            return _file_response(generation.source.file, f"{generation.pk}-input.png")
        if self.kind == "mask":
            if generation.mask is None:
                raise Http404("This generation has no mask.")
            return _file_response(generation.mask.file, f"{generation.pk}-mask.png")
        if self.kind == "mask_thumbnail":
            if generation.mask is None:
                raise Http404("This generation has no mask.")
            return _file_response(generation.mask.thumbnail, f"{generation.pk}-mask-thumb.png")
        image = next((i for i in generation.images.all() if i.index == index), None)
        if image is None:
            raise Http404("No such image.")
        return _file_response(image.file, f"{generation.pk}-{index}.png")


@extend_schema(
    responses=inline_serializer(
        "Health",
        {
            "status": serializers.CharField(),
            "engine": serializers.CharField(),
            "engines": serializers.ListField(child=serializers.CharField()),
            "model": serializers.CharField(),
        },
    ),
)
class HealthView(AsyncAPIView):
    """Cheap liveness check; never touches the database or loads the model."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []  # load balancers probe it constantly

    async def get(self, request: Request) -> Response:
        config = engine_config()
        body = {
            "status": "healthy",
            "engine": config.default(),
            "engines": config.available(),
            "model": config.model_name(config.default()),
        }
        if config.load_diffusers:
            # What the workers reported about the diffusion model (from the cache, not the DB).
            # A thread of the shared pool: probes must not each start a request thread.
            status = await sync_to_async(model_status, thread_sensitive=False)()
            body["diffusion_model"] = status or {
                "loaded": None,
                "error": None,
                "model": config.model_name("diffusers"),
            }
        return Response(body)
