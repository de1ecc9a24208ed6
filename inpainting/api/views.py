"""Thin API views: parse, call a service or selector, present."""

from __future__ import annotations

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
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
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..answers import native
from ..conf import engine_config, lama_file, model_status
from ..engine import EngineConfig, MaskOptions, Outpaint, selection
from ..engine.schedulers import SCHEDULERS, scheduler_names
from ..errors import without_paths
from ..fleet import fleet_summary
from ..models import Generation
from ..services import (
    additions,
    generations,
    images,
    layer_models,
    library,
    links,
    mask_models,
    masks,
    pictures,
    projects,
    splits,
    upscale,
    upscalers,
    usage,
)
from ..services import selection as selections
from .common import (
    SubmitAndWaitView,
    Submitted,
    base_url,
    generation_create_for,
    get_generation_or_404,
    remote_upload,
    sender,
    unfinished_response,
)
from .docs import GenerationDoc
from .media import STORED_PICTURE_MAX_AGE, image_response, selection_response
from .parsers import JSONParser
from .serializers import (
    Img2ImgSerializer,
    MaskGenerateSerializer,
    MaskPreviewSerializer,
    SplitSerializer,
    UpscaleSerializer,
    merge_form_and_params,
    validated,
)


@extend_schema(
    request={"multipart/form-data": Img2ImgSerializer},
    responses={
        200: OpenApiResponse(description="Finished: status success, images, metadata."),
        202: OpenApiResponse(description="Still processing: id, eta, fetch_result, websocket."),
    },
)
class Img2ImgView(SubmitAndWaitView):
    """``POST /api/img2img``: the DreamLayer inpainting API (white kept, black inpainted)."""

    parser_classes = [MultiPartParser, FormParser]

    input_serializer = Img2ImgSerializer

    def input_data(self, request: Request) -> dict:
        """Form fields, the optional JSON ``params`` field on top, and the files; a
        ``project`` file gives the picture, mask and layers, and the parameters the request
        does not send itself (``services.projects.project_request``)."""
        data = merge_form_and_params(request.data)
        if "project" in request.FILES:
            opened = projects.project_request(
                projects.project_upload_read(request.FILES["project"])
            )
            sent = {k: v for k, v in data.items() if k not in projects.PROJECT_FIELDS}
            return {**opened, **sent}
        data.update(
            {name: request.FILES[name] for name in ("image", "mask") if name in request.FILES}
        )
        for name in ("reference_images", "layer_masks"):
            if name in request.FILES:
                data[name] = request.FILES.getlist(name)
        return data

    def submit(self, request: Request, serializer: Img2ImgSerializer) -> Submitted:
        data = serializer.validated_data
        layer_files = tuple(
            remote_upload(value, "layers") if kind == "data" else value
            for kind, value in serializer.layer_sources()
        )
        generation = generation_create_for(
            request,
            "",
            data["image"],
            data.get("mask"),
            serializer.to_params(),
            webhook_url=data.get("webhook_url") or None,
            reference_files=tuple(data.get("reference_images", ())),
            max_queue_seconds=data.get("max_queue_seconds"),
            layer_files=layer_files,
        )
        return Submitted(generation, wait=data["wait"], context=data["wait"])

    def answer(self, request: Request, generation: Generation, wait: bool) -> Response:
        base = base_url(request)
        if not wait:  # wait=false always answers 202 at once; fetch_result has the outcome
            return Response(
                native.img2img_processing(generation, base), status=status.HTTP_202_ACCEPTED
            )
        if generation.status == Generation.Status.SUCCEEDED:
            return Response(native.img2img_success(generation, base))
        return unfinished_response(generation, base)


@extend_schema(
    request={
        "multipart/form-data": UpscaleSerializer,
        "application/json": UpscaleSerializer,
    },
    responses={
        200: OpenApiResponse(description="Finished: status success, images, metadata."),
        202: OpenApiResponse(description="Still processing: id, eta, fetch_result, websocket."),
        404: OpenApiResponse(description="No such generation of yours."),
    },
)
class UpscaleView(Img2ImgView):
    """``POST /api/upscale``: upscale a picture, or one of your generations' outputs, as a job
    in your history (a resampler, or a super-resolution model of ``GET /api/upscalers``)."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]
    input_serializer = UpscaleSerializer

    def input_data(self, request: Request):
        if not hasattr(request.data, "keys"):  # JSON that is no object: the serializer says so
            return request.data
        data = {key: request.data[key] for key in request.data if key != "image"}
        if "image" in request.FILES:
            data["image"] = request.FILES["image"]
        return data

    def submit(self, request: Request, serializer: UpscaleSerializer) -> Submitted:
        data = serializer.validated_data
        generation = upscale.upscale_job_create(
            sender(request),
            ask=upscale.UpscaleAsk(
                factor=data.get("factor"), width=data.get("width"), height=data.get("height")
            ),
            upscaler=data.get("upscaler"),
            image_file=data.get("image"),
            # Your own only (staff too: the new job is theirs).
            generation=(
                get_generation_or_404(request, data["generation"], change=True)
                if "generation" in data
                else None
            ),
            index=data["index"],
        )
        return Submitted(generation, wait=data["wait"], context=data["wait"])


@extend_schema(
    request={"multipart/form-data": SplitSerializer},
    responses={
        200: OpenApiResponse(description="Finished: the layers (RGBA PNGs, bottom up)."),
        202: OpenApiResponse(description="Still processing: id, eta, fetch_result, websocket."),
    },
)
class SplitView(Img2ImgView):
    """``POST /api/layers/split``: a picture split into transparent layers (RGBA PNGs, bottom
    up: the background first) by a layer model of ``GET /api/layer-models``, as a job in your
    history."""

    input_serializer = SplitSerializer

    def input_data(self, request: Request):
        data = {key: request.data[key] for key in request.data if key != "image"}
        if "image" in request.FILES:
            data["image"] = request.FILES["image"]
        return data

    def submit(self, request: Request, serializer: SplitSerializer) -> Submitted:
        data = serializer.validated_data
        seed = data.get("seed")
        generation = splits.split_job_create(
            sender(request),
            image_file=data["image"],
            layers=data["layers"],
            prompt=data.get("prompt") or "",
            model=data.get("model"),
            seed=None if seed == -1 else seed,
            steps=data.get("num_inference_steps"),
            resolution=data["resolution"],
        )
        return Submitted(generation, wait=data["wait"], context=data["wait"])


class LayerModelListView(APIView):
    """The layer models a split may name (``LAYER_MODELS_DIR``)."""

    @extend_schema(
        responses=inline_serializer(
            "LayerModels", {"layer_models": serializers.ListField(child=serializers.DictField())}
        )
    )
    def get(self, request: Request) -> Response:
        return Response({"layer_models": layer_models.library_layer_models_described()})


class UpscalerListView(APIView):
    """The upscalers a job may name: lanczos and nearest (no weights), then the library's
    super-resolution models (``UPSCALERS_DIR``) with the architecture and scale spandrel found."""

    @extend_schema(
        responses=inline_serializer(
            "Upscalers", {"upscalers": serializers.ListField(child=serializers.DictField())}
        )
    )
    def get(self, request: Request) -> Response:
        return Response({"upscalers": upscalers.library_upscalers_described(request.user)})


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("all", bool, description="staff: everyone's generations")]
    ),
    destroy=extend_schema(responses={204: None}),
    cancel=extend_schema(request=None),
    rerun=extend_schema(request=None, responses={201: GenerationDoc}),
    project=extend_schema(
        responses={(200, "application/zip"): OpenApiResponse(description="the project file")}
    ),
)
class GenerationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your generations (staff: everyone's with ``?all=1``), newest first."""

    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    serializer_class = GenerationDoc  # documents the shape; ``answers.native`` builds the responses

    def get_queryset(self):
        include_all = self.request.query_params.get("all") in ("1", "true")
        return selectors.generation_list(user=self.request.user, include_all=include_all)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        base = base_url(request)
        return self.get_paginated_response([native.detail(g, base) for g in page])

    def retrieve(self, request: Request, pk=None) -> Response:
        return Response(native.detail(get_generation_or_404(request, pk), base_url(request)))

    def destroy(self, request: Request, pk=None) -> Response:
        generations.generation_delete(generation=get_generation_or_404(request, pk, change=True))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        generation = get_generation_or_404(request, pk, change=True)
        generations.generation_cancel(generation=generation)
        generation.refresh_from_db()
        return Response(native.detail(generation, base_url(request)))

    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk=None) -> Response:
        generation = get_generation_or_404(request, pk, change=True)
        new = generations.generation_rerun(generation=generation, user=request.user)
        new = selectors.generation_get(user=request.user, generation_id=new.pk)
        return Response(native.detail(new, base_url(request)), status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def project(self, request: Request, pk=None):
        """The job as a project file (``services.projects``): open it in the studio, or send
        it as ``project`` to ``POST /api/img2img`` to run it again."""
        generation = get_generation_or_404(request, pk)
        return image_response(
            projects.generation_project(generation=generation),
            filename=generation.file_name("project", extension="zip"),
            content_type="application/zip",
        )


class ProjectUploadSerializer(serializers.Serializer):
    project = serializers.FileField(
        help_text="A DreamLayer project (a ZIP: GET /api/generations/<id>/project/)."
    )


class ProjectOpenView(APIView):
    """``POST /api/projects/open``: a project file's job as JSON (its pictures as data URLs),
    for a page to show: the studio opens a project through this."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ProjectUploadSerializer},
        responses={200: OpenApiResponse(description="prompt, params, image, mask, layers")},
    )
    def post(self, request: Request):
        upload = validated(ProjectUploadSerializer, request.data)["project"]
        return Response(projects.project_json(projects.project_upload_read(upload)))


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


class UsageView(APIView):
    """What the caller has run: jobs and GPU-seconds (the engine's measured inference time;
    a job not yet run, its model's usual) over the last hour, day, week and month, the bytes
    their pictures take, and their limits (the quotas staff set an hour and a day, each
    with whose it is; the storage and active-job limits)."""

    @extend_schema(
        responses=inline_serializer(
            "Usage",
            {
                "username": serializers.CharField(),
                "usage": serializers.DictField(child=serializers.DictField()),
                "stored_bytes": serializers.IntegerField(),
                "limits": serializers.DictField(child=serializers.DictField()),
                "storage_bytes_limit": serializers.IntegerField(allow_null=True),
                "active_jobs_limit": serializers.IntegerField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(usage.usage_summary(request.user))


class ModelListView(APIView):
    """The model library: the enabled models a job may name (``model``), the default first;
    with no diffusion model (LOAD_SD_INPAINT off) none, and ``fill_engine`` names the engine
    that runs instead (it fills a mask from the picture and follows no prompt)."""

    @extend_schema(
        responses=inline_serializer(
            "Models",
            {
                "default": serializers.CharField(allow_null=True),
                "models": serializers.ListField(child=serializers.DictField()),
                "fill_engine": serializers.CharField(allow_null=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        items = library.library_models_described(user=request.user)
        # The server's default, or (where the user may not run it) the first they may run:
        # the model their jobs that name none run (``library.library_model_for_job``).
        default = next((m["name"] for m in items if m["default"]), None) or next(
            (m["name"] for m in items), None
        )
        fill = engine_config().fill_engine()
        return Response({"default": default, "models": items, "fill_engine": fill})


def _additions_view(key: str, component: str, described, doc: str) -> type[APIView]:
    """A view that lists the library's additions of one kind (``described``) under ``key``."""

    class AdditionListView(APIView):
        @extend_schema(
            responses=inline_serializer(
                component, {key: serializers.ListField(child=serializers.DictField())}
            )
        )
        def get(self, request: Request) -> Response:
            return Response({key: described(request.user)})

    AdditionListView.__doc__ = doc
    AdditionListView.__name__ = AdditionListView.__qualname__ = f"{component}ListView"
    return AdditionListView


LoraListView = _additions_view(
    "loras",
    "Loras",
    additions.library_loras_described,
    "The LoRAs of the library a job may apply (``loras``, ``<lora:name:weight>``).",
)
ControlNetListView = _additions_view(
    "controlnets",
    "ControlNets",
    additions.library_controlnets_described,
    "The ControlNets of the library a job may use (``controlnet``).",
)
IpAdapterListView = _additions_view(
    "ip_adapters",
    "IpAdapters",
    additions.library_ip_adapters_described,
    "The IP-Adapters of the library a job may use (``ip_adapter``).",
)


MaskModelListView = _additions_view(
    "mask_models",
    "MaskModels",
    lambda user: mask_models.library_mask_models_described(),  # open to everyone
    "The mask models of the library (``POST /api/masks/generate`` with method sam, text or "
    "background), each with the methods it runs.",
)


class MaskGenerateView(AsyncAPIView):
    """A mask from a box, points or a colour without model weights (GrabCut, flood fill), or
    from a mask model in a selection worker (SAM 2.1, SAM 3, GroundingDINO + SAM 2.1, a rembg
    model), waited for without holding a thread."""

    parser_classes = [MultiPartParser, FormParser]

    def _parse(self, request: Request):
        """The valid serializer and the user (authentication reads the database: a thread)."""
        serializer = MaskGenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer, request.user

    def _classical(self, data: dict, user):
        return image_response(
            masks.mask_generate(
                user=user,
                image_file=data["image"],
                method=data["method"],
                box=data.get("box"),
                points=data.get("points", []),
                point=data.get("point"),
                tolerance=data["tolerance"],
                mask_mode=data["mask_mode"],
            )
        )

    @extend_schema(
        request={"multipart/form-data": MaskGenerateSerializer},
        responses={(200, "image/png"): OpenApiResponse(description="mask PNG")},
    )
    async def post(self, request: Request):
        serializer, user = await sync_to_async(self._parse)(request)
        data = serializer.validated_data
        if data["method"] not in selection.METHOD_FAMILIES:
            return await sync_to_async(self._classical)(data, user)
        selected = await selections.selection_make(
            user=user,
            image_file=data["image"],
            method=data["method"],
            model=data.get("model"),
            prompt=serializer.to_prompt(),
            mask_mode=data["mask_mode"],
        )
        return selection_response(selected)


class MaskPreviewView(APIView):
    """The effective mask (white = regenerated) for a mask file, an image size and options."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": MaskPreviewSerializer},
        responses={(200, "image/png"): OpenApiResponse(description="grayscale PNG")},
    )
    def post(self, request: Request):
        data = validated(MaskPreviewSerializer, request.data)
        outpaint = data.get("outpaint")
        png = masks.mask_preview(
            user=request.user,
            mask_file=data.get("mask"),
            size=(data["width"], data["height"]),
            options=MaskOptions(
                mode=data["mask_mode"],
                invert=data["invert_mask"],
                blur=data["mask_blur"],
                grow=data["mask_grow"],
            ),
            outpaint=Outpaint(**outpaint) if outpaint else None,
        )
        return image_response(png)


class ImageUploadSerializer(serializers.Serializer):
    image = serializers.FileField(
        help_text="JPEG, PNG, WebP, HEIC / HEIF or AVIF, at most UPLOAD_MAX_BYTES."
    )


class ImagePngView(APIView):
    """An uploaded picture as an upright PNG: the studio shows a phone's HEIC photo, which the
    browser cannot decode, through this (and sends the PNG on with the job)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImageUploadSerializer},
        responses={(200, "image/png"): OpenApiResponse(description="the picture, upright")},
    )
    def post(self, request: Request):
        upload = validated(ImageUploadSerializer, request.data)["image"]
        return image_response(images.image_upright_png(upload, user=request.user))


def _file_response(field_file, download_name: str):
    """Stored bytes streamed through this process from whatever storage holds them (the
    data folder or an S3 bucket), never a redirect to the bucket: docs/adr/0006."""
    return image_response(
        field_file.open("rb"), filename=download_name, max_age=STORED_PICTURE_MAX_AGE
    )


class GenerationFileView(APIView):
    """The image bytes of a generation (``services.pictures``): owner or staff only (others
    get 404). Downloads are named for people (``Generation.file_name``); thumbnails are WebP."""

    part = ""  # an output's comes from the address (its index)
    thumbnail = False

    @extend_schema(
        responses={(200, "image/png"): OpenApiResponse(description="PNG bytes (WebP: thumbnails)")}
    )
    def get(
        self,
        request: Request,
        pk,
        index: int | None = None,
        part: str | None = None,
        layer: int | None = None,
    ):
        generation = get_generation_or_404(request, pk)
        part = (
            self.part or part or (pictures.layer_part(layer) if layer is not None else str(index))
        )
        if self.thumbnail:
            picture = pictures.generation_thumbnail(generation=generation, part=part)
            return image_response(
                picture.open("rb"), max_age=STORED_PICTURE_MAX_AGE, content_type="image/webp"
            )
        found = pictures.generation_picture(generation=generation, part=part)
        return _file_response(found.file, generation.file_name(found.name))


def _health_reads() -> tuple[EngineConfig, dict, list | None, dict | None]:
    """What the health check reads outside the process: the engine configuration (whether
    the library holds a diffusion model), the LaMa status, the live workers (without their
    names) and, with a diffusion model, its status."""
    config = engine_config()
    lama = model_status("lama") or {}
    status = model_status() if config.load_diffusers else None
    return config, _anonymous(lama), fleet_summary(names=False), status and _anonymous(status)


def _anonymous(status: dict) -> dict:
    """A worker's report on a model for an anonymous caller: no path of the server's disk."""
    return {k: without_paths(v) if isinstance(v, str) else v for k, v in status.items()}


@extend_schema(
    responses=inline_serializer(
        "Health",
        {
            "status": serializers.CharField(),
            "engine": serializers.CharField(),
            "engines": serializers.ListField(child=serializers.CharField()),
            "model": serializers.CharField(),
            "fill_engine": serializers.BooleanField(),
            "lama": inline_serializer(
                "HealthLama",
                {
                    "present": serializers.BooleanField(),
                    "model": serializers.CharField(),
                    "loaded": serializers.BooleanField(allow_null=True),
                    "error": serializers.CharField(allow_null=True),
                },
            ),
            "workers": inline_serializer(
                "HealthWorker",
                {
                    "models": serializers.ListField(child=serializers.CharField()),
                    "loaded": serializers.ListField(child=serializers.CharField()),
                    "memory": serializers.DictField(child=serializers.IntegerField()),
                    "device": serializers.CharField(),
                    "gpu_memory": serializers.IntegerField(allow_null=True),
                    "age_seconds": serializers.FloatField(),
                },
                many=True,
                allow_null=True,
            ),
        },
    ),
)
class HealthView(AsyncAPIView):
    """Cheap liveness check; never touches the database or loads the model."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []  # load balancers probe it constantly

    async def get(self, request: Request) -> Response:
        # One hop to a thread of the shared pool for every read (the configuration's library
        # reading, a stat, the cache, Redis): under load each hop waits for a thread and the
        # GIL, so probes make one, not four.
        config, lama, workers, status = await sync_to_async(_health_reads, thread_sensitive=False)()
        body = {
            "status": "healthy",
            "engine": config.default(),
            "engines": config.available(),
            "model": config.model_name(config.default()),
            # A fill engine's model is no checkpoint: it follows no prompt.
            "fill_engine": config.fill_engine() is not None,
        }
        # Whether the LaMa file is there (a stat), and what the workers that opened it reported
        # (loaded: null until one has); the web process never opens it.
        body["lama"] = {
            "present": config.lama_model is not None,
            "model": lama_file().name,
            "loaded": lama.get("loaded"),
            "error": lama.get("error"),
        }
        # The live inference workers: the library models each serves (its queues) and the
        # pipelines it holds now; null when Redis cannot be read. Anonymous callers (load
        # balancers) do not get the machines' names: `manage.py engine_info` shows them.
        body["workers"] = workers
        if config.load_diffusers:
            # What the workers reported about the diffusion model (from the cache, not the DB).
            body["diffusion_model"] = status or {
                "loaded": None,
                "error": None,
                "model": config.model_name("diffusers"),
            }
        return Response(body)


class ImageLinkView(APIView):
    """An output named by a signed link (the output links of ModelsLab, FooocusAPI and
    deep-image.ai answers): no key, for ``IMAGE_LINK_SECONDS``, the stored file as it is; a
    forged, expired or revoked link (a deleted job, a revoked key) is a 404."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="the image")})
    def get(self, request: Request, token: str):
        link = links.image_link_read(token)
        # Kept no longer than the link works (a deleted job's link stops working at once).
        max_age = min(STORED_PICTURE_MAX_AGE, link.seconds_left)
        return image_response(link.file.open("rb"), content_type=link.content_type, max_age=max_age)
