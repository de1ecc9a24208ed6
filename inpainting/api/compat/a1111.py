"""AUTOMATIC1111's web UI API (also Forge's and SD.Next's): ``POST /sdapi/v1/img2img``,
``GET /sdapi/v1/progress``, ``POST /sdapi/v1/interrupt`` and ``/skip``, ``GET /sdapi/v1/
sd-models``, ``/samplers``, ``/schedulers``, ``/options``, ``/scripts``, ``POST /sdapi/v1/
png-info``.

Kept from A1111: JSON with base64 images (a data URL or bare; white = inpaint), its field
names and meanings (``mask_blur``, ``inpainting_fill``, ``inpaint_full_res`` with its padding,
``inpainting_mask_invert``, ``denoising_strength``, ``seed`` -1 random, ``sampler_name`` and
``scheduler``, ``steps``, ``cfg_scale``, ``batch_size`` x ``n_iter``, ``width`` / ``height``
with ``resize_mode``, ``override_settings.sd_model_checkpoint`` and
``CLIP_stop_at_last_layers``, ControlNet units in ``alwayson_scripts``), the answer
``{"images", "parameters", "info"}`` with ``info`` a JSON string, and HTTP Basic with the key
as the password. What does not run here is accepted and named in ``info.ignored``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponseBase, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BasicKeyAuthentication

from ... import selectors
from ...answers import a1111
from ...answers.native import img2img_processing
from ...conf import engine_config
from ...engine import InvalidInput
from ...engine.images import PARAMETERS_KEY
from ...engine.parameters import check_controlnet
from ...engine.upscale import MAX_SIDE
from ...errors import ClientError, cut, echoed
from ...models import Generation
from ...params import GenerationParams
from ...progress import latest_preview
from ...services import generations, images
from ...services.library import (
    library_deployment_model_offered,
    library_model_named,
    library_models_offered,
    library_user_checkpoint,
    library_user_checkpoint_set,
)
from ...services.upscale import UpscaleAsk, upscale_job_create, upscale_pngs
from ...services.upscalers import library_upscaler_named
from ...uploads import check_dimensions
from .. import common
from ..serializers import (
    BoundedDictField,
    BoundedListField,
    ChoiceField,
    check_count,
    field_for,
    first_error,
)

TAGS = ["compat: AUTOMATIC1111"]
#: ControlNet preprocessors that mean what DreamLayer's ControlNet does (inpaint conditioning).
INPAINT_MODULES = ("", "none", "inpaint", "inpaint_only", "inpaint_global_harmonious")
#: ControlNet units one request may send (the extension's own limit on units is 10).
MAX_CONTROLNET_UNITS = 10
#: ``alwayson_scripts`` entries one request may name, and ``override_settings`` and ``styles``.
MAX_SCRIPTS = 32
MAX_OVERRIDES = 64
#: Options one ``POST /sdapi/v1/options`` may carry (A1111 has about 400; clients post all).
MAX_OPTIONS = 1024
MAX_STYLES = 32
#: AUTOMATIC1111's soft-inpainting script (lower case), and its tuning arguments' defaults:
#: schedule bias, preservation strength, transition contrast boost, mask influence, difference
#: threshold, difference contrast.
SOFT_SCRIPT = "soft inpainting"
SOFT_DEFAULTS = (1, 0.5, 4, 0, 0.5, 2)
#: A checkpoint title's short hash: "name.safetensors [6ce0161689]".
TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")


class A1111View(APIView):
    """HTTP Basic with the key as the password (or the key headers); A1111's error body."""

    authentication_classes = [BasicKeyAuthentication]
    error_shape = staticmethod(a1111.error_body)


class ControlNetUnitSerializer(serializers.Serializer):
    """One unit of the ControlNet extension's ``args`` (the fields that matter here)."""

    enabled = serializers.BooleanField(default=True)
    model = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default="", max_length=255
    )
    module = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default="", max_length=255
    )
    weight = serializers.FloatField(default=1.0)
    guidance_start = serializers.FloatField(default=0.0)
    guidance_end = serializers.FloatField(default=1.0)
    image = serializers.CharField(required=False, allow_null=True, allow_blank=True)


def _without_hash(title: str) -> str:
    """A checkpoint's name from its title: without A1111's ``[hash]`` (or the fill engine's
    mark, ``answers.a1111.FILL_ENGINE_SUFFIX``)."""
    return TITLE_HASH.sub("", title).strip().removesuffix(a1111.FILL_ENGINE_SUFFIX.strip())


class A1111Img2ImgSerializer(serializers.Serializer):
    init_images = BoundedListField(
        child=serializers.CharField(),
        min_length=1,
        max_length=1,
        what="init image a request here (send each image in a request of its own)",
    )
    mask = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    resize_mode = ChoiceField(choices=sorted(a1111.RESIZE_MODES), default=0)
    denoising_strength = field_for("denoising_strength", default=0.75)
    mask_blur = field_for("mask_blur")
    inpainting_fill = ChoiceField(choices=sorted(a1111.INPAINTING_FILL), default=0)
    inpaint_full_res = serializers.BooleanField(default=True)
    inpaint_full_res_padding = field_for("padding")
    inpainting_mask_invert = serializers.BooleanField(default=False)  # A1111 sends 0 or 1
    prompt = field_for("prompt")
    negative_prompt = field_for("negative_prompt")
    seed = field_for("seed", default=-1, allow_null=False)
    sampler_name = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    sampler_index = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    scheduler = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    batch_size = serializers.IntegerField(min_value=1, default=1)
    n_iter = serializers.IntegerField(min_value=1, default=1)
    steps = field_for("num_inference_steps")
    cfg_scale = field_for("guidance_scale")
    width = serializers.IntegerField(min_value=1, default=512)
    height = serializers.IntegerField(min_value=1, default=512)
    override_settings = BoundedDictField(
        max_items=MAX_OVERRIDES, what="settings", required=False, default=dict
    )
    alwayson_scripts = BoundedDictField(
        max_items=MAX_SCRIPTS, what="scripts", required=False, default=dict
    )
    script_name = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=255
    )
    restore_faces = serializers.BooleanField(required=False, allow_null=True, default=False)
    tiling = serializers.BooleanField(required=False, allow_null=True, default=False)
    styles = BoundedListField(
        child=serializers.CharField(),
        max_length=MAX_STYLES,
        what="styles",
        required=False,
        default=list,
    )
    subseed_strength = serializers.FloatField(required=False, default=0.0)
    initial_noise_multiplier = serializers.FloatField(required=False, allow_null=True)
    send_images = serializers.BooleanField(default=True)

    def validate(self, data):
        samples = data["batch_size"] * data["n_iter"]
        limit = field_for("samples").max_value
        if samples > limit:
            raise serializers.ValidationError(
                {"batch_size": [f"batch_size x n_iter is {samples}; at most {limit} here."]}
            )
        check_dimensions(data["width"], data["height"], field="width")
        data["sampler"] = self._sampler(data)
        data["soft"], soft_ignored = self._soft_inpainting(data)
        data["controlnet"], data["ignored"] = self._scripts(data)
        data["ignored"] += soft_ignored
        return data

    @staticmethod
    def _soft_inpainting(data) -> tuple[bool, list[str]]:
        """The soft-inpainting extension's script (openOutpaint and Cyanic SD-Krita send it):
        its first argument switches DreamLayer's soft inpainting on; its tuning arguments, when
        they differ from the extension's defaults, are named as ignored (``_scripts`` names
        every other script)."""
        name = next((n for n in data["alwayson_scripts"] if n.lower() == SOFT_SCRIPT), None)
        if name is None:
            return False, []
        script = data["alwayson_scripts"][name]
        args = script.get("args") if isinstance(script, dict) else None
        if not isinstance(args, list) or len(args) > len(SOFT_DEFAULTS) + 1:
            raise serializers.ValidationError(
                {"alwayson_scripts": [f"{name}'s args must be a list of at most "
                                      f"{len(SOFT_DEFAULTS) + 1} values."]}
            )  # fmt: skip
        enabled = bool(args[0]) if args else False
        tuned = enabled and any(
            given != default for given, default in zip(args[1:], SOFT_DEFAULTS, strict=False)
        )
        return enabled, [f"{name}: its tuning arguments (soft inpainting runs)"] if tuned else []

    @staticmethod
    def _sampler(data) -> str | None:
        """DreamLayer's scheduler for A1111's sampler and noise schedule (None: the model's)."""
        name = (data.get("sampler_name") or data.get("sampler_index") or "").strip()
        schedule = (data.get("scheduler") or "automatic").strip().lower()
        if schedule not in a1111.SCHEDULES:
            raise serializers.ValidationError(
                {"scheduler": [f"Unknown scheduler {echoed(schedule)}; choose one of "
                               f"{', '.join(a1111.SCHEDULES)}."]}
            )  # fmt: skip
        if not name:
            return None
        available = {s["name"]: s for s in a1111.samplers()}
        found = next(
            (n for n, s in available.items() if name.lower() in (n.lower(), *s["aliases"])), None
        )
        if found is None:
            raise serializers.ValidationError(
                {"sampler_name": [f"Sampler not found: {echoed(name)}; choose one of "
                                  f"{', '.join(available)} (GET /sdapi/v1/samplers)."]}
            )  # fmt: skip
        if schedule == "karras" and not found.endswith("Karras"):
            karras = f"{found} Karras"
            if karras not in available:
                raise serializers.ValidationError(
                    {"scheduler": [f"No Karras schedule for {echoed(found)} here; Karras runs with "
                                   "DPM++ 2M only."]}
                )  # fmt: skip
            found = karras
        return a1111.SAMPLERS[found][0]

    @staticmethod
    def _scripts(data) -> tuple[dict | None, list[str]]:
        """The ControlNet unit mapped onto DreamLayer's ControlNet (the one enabled unit that
        names a model), and what is named as ignored."""
        ignored = [
            name
            for name, unused in (
                ("restore_faces", data.get("restore_faces")),
                ("tiling", data.get("tiling")),
                ("styles", data.get("styles")),
                ("subseed_strength", data.get("subseed_strength")),
                ("initial_noise_multiplier", data.get("initial_noise_multiplier") not in
                 (None, 1, 1.0)),
            )
            if unused
        ]  # fmt: skip
        if data.get("script_name"):
            ignored.append(f"script {cut(data['script_name'])}")
        used = []
        for name, script in data["alwayson_scripts"].items():
            if name.lower() == SOFT_SCRIPT:
                continue  # _soft_inpainting
            if name.lower() != "controlnet":
                ignored.append(f"script {cut(name)}")
                continue
            args = script.get("args") if isinstance(script, dict) else None
            if not isinstance(args, list):
                raise serializers.ValidationError(
                    {"alwayson_scripts": ["ControlNet's args must be a list of units."]}
                )
            try:
                check_count(args, most=MAX_CONTROLNET_UNITS, what="ControlNet units")
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"alwayson_scripts": exc.detail}) from None
            units = ControlNetUnitSerializer(data=args, many=True)
            if not units.is_valid():
                message = first_error(units.errors, "ControlNet units")
                raise serializers.ValidationError({"alwayson_scripts": [message]})
            used += [
                u
                for u in units.validated_data
                if u["enabled"] and (u["model"] or "none").lower() != "none"
            ]
        if len(used) > 1:
            raise serializers.ValidationError(
                {"alwayson_scripts": ["One ControlNet unit a job here."]}
            )
        controlnet = None
        for unit in used:
            try:
                check_controlnet(unit["weight"], unit["guidance_start"], unit["guidance_end"])
            except InvalidInput as exc:
                raise serializers.ValidationError({"alwayson_scripts": [str(exc)]}) from None
            controlnet = {
                "name": _without_hash(unit["model"]),
                "conditioning_scale": unit["weight"],
                "guidance_start": unit["guidance_start"],
                "guidance_end": unit["guidance_end"],
            }
            if unit.get("image"):
                ignored.append("ControlNet unit image (the inpaint ControlNet reads the input)")
            if (unit["module"] or "").lower() not in INPAINT_MODULES:
                module = cut(unit["module"])
                ignored.append(f"ControlNet module {module} (inpaint conditioning runs)")
        return controlnet, ignored

    def to_params(self) -> GenerationParams:
        data = self.validated_data
        prompt = data["prompt"]
        overrides = data["override_settings"]
        checkpoint = _without_hash(str(overrides.get("sd_model_checkpoint") or ""))
        if checkpoint and not prompt.strip():
            # Without a prompt the job removes (the removal engine); no diffusion model runs.
            data["ignored"].append("sd_model_checkpoint (no prompt: the removal engine runs)")
            checkpoint = ""
        model = library_model_named(checkpoint, field="override_settings")
        fill = engine_config().fill_engine()
        if checkpoint and fill:
            data["ignored"].append(
                f"sd_model_checkpoint (no diffusion model runs here: the {fill} engine fills)"
            )
        clip_skip = overrides.get("CLIP_stop_at_last_layers", GenerationParams().clip_skip)
        clip = field_for("clip_skip")
        try:
            clip_skip = clip.run_validation(clip_skip)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(
                {"override_settings": [f"CLIP_stop_at_last_layers: {exc.detail[0]}"]}
            ) from None
        return GenerationParams(
            prompt=prompt,
            negative_prompt=data["negative_prompt"],
            denoising_strength=data["denoising_strength"],
            num_inference_steps=data["steps"],
            guidance_scale=data["cfg_scale"],
            seed=None if data["seed"] == -1 else data["seed"],
            samples=data["batch_size"] * data["n_iter"],
            mask_mode="white_inpaints",
            mask_alpha="opaque",
            invert_mask=data["inpainting_mask_invert"],
            soft=data["soft"],
            mask_blur=data["mask_blur"],
            inpaint_area="masked" if data["inpaint_full_res"] else "whole",
            padding=data["inpaint_full_res_padding"],
            resize={
                "width": data["width"],
                "height": data["height"],
                "mode": a1111.RESIZE_MODES[data["resize_mode"]],
            },
            # Without a mask (plain img2img) A1111 starts from the picture, whatever the fill.
            masked_content=a1111.INPAINTING_FILL[data["inpainting_fill"]]
            if data.get("mask")
            else "original",
            clip_skip=clip_skip,
            controlnet=data["controlnet"],
            scheduler=data["sampler"],
            model=model,
        )

    def echo(self) -> dict:
        """The request as A1111 echoes it in ``parameters`` (no images)."""
        data = dict(self.validated_data)
        for internal in ("sampler", "controlnet", "ignored", "soft"):
            data.pop(internal, None)
        return {**data, "init_images": None, "mask": None}


@extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="images, parameters, info")})
class A1111Img2ImgView(common.SubmitAndWaitView):
    authentication_classes = [BasicKeyAuthentication]
    error_shape = staticmethod(a1111.error_body)
    input_serializer = A1111Img2ImgSerializer
    blocking = True

    def submit(self, request: Request, serializer: A1111Img2ImgSerializer) -> common.Submitted:
        data = serializer.validated_data
        params = serializer.to_params()
        if params.model is None and params.prompt.strip():
            # The checkpoint the caller chose with POST /sdapi/v1/options, if any.
            chosen = library_user_checkpoint(request.user)
            params = replace(params, model=chosen.name if chosen else None)
        if not data.get("mask"):  # checked before the picture is fetched
            generations.generation_check_whole_picture(params, field="init_images")
        image = common.remote_upload(data["init_images"][0], "init_images")
        mask = (
            common.remote_upload(data["mask"], "mask")
            if data.get("mask")
            else images.whole_image_mask(image, field="init_images")
        )
        submission = generations.generation_create(
            user=request.user,
            image_file=image,
            mask_file=mask,
            params=params,
            client=Generation.Client.A1111,
            api_key=common.api_key_of(request),
            idempotency_key=common.idempotency_key_of(request),
            extra_metadata={"a1111": {"ignored": data["ignored"]}},
        )
        context = {
            "echo": serializer.echo(),
            "sampler": data.get("sampler_name") or data.get("sampler_index") or None,
            "schedule": (data.get("scheduler") or "automatic").lower(),
            "batch_size": data["batch_size"],
            "n_iter": data["n_iter"],
            "ignored": data["ignored"],
            "send_images": data["send_images"],
        }
        return common.Submitted(submission.generation, context=context)

    def answer(self, request: Request, generation: Generation, context: dict) -> Response:
        problem = common.unfinished(generation, blocking=True)
        if problem is not None:
            code, message = problem
            body = a1111.error_body(code, message, {})
            if code == 504:  # where to fetch it when it is done
                body.update(img2img_processing(generation, common.base_url(request)))
            return Response(body, status=code)
        pngs, texts = [], []
        for image in generation.images.all():
            with image.file.open("rb") as handle:
                png = handle.read()
            pngs.append(png)
            texts.append(images.png_texts(png).get(PARAMETERS_KEY, ""))
        model = selectors.library_model_list().filter(name=generation.model_name).first()
        info = a1111.info(
            generation,
            sampler=context["sampler"],
            schedule=context["schedule"],
            batch_size=context["batch_size"],
            n_iter=context["n_iter"],
            texts=texts,
            model_hash=(model.sha256[:10] or None) if model else None,
            ignored=context["ignored"],
        )
        sent = pngs if context["send_images"] else []
        return Response(a1111.img2img_body(sent, context["echo"], info))


class A1111ProgressView(A1111View):
    """The caller's current job (never another user's): ``current_image`` is its latest live
    preview (a diffusion model's, every 5 steps) unless ``skip_current_image`` is true."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="A1111 progress")})
    def get(self, request: Request) -> Response:
        generation, count = selectors.generation_current(user=request.user)
        skip = request.query_params.get("skip_current_image", "").lower() in ("true", "1")
        preview = latest_preview(generation.pk) if generation and not skip else None
        eta = selectors.generation_eta_seconds(generation=generation) if generation else None
        return Response(
            a1111.progress(
                generation, job_count=count, eta=eta, current_image=images.preview_png(preview)
            )
        )


class A1111InterruptView(A1111View):
    """Interrupt the caller's current job (A1111's ``/skip`` too: a batch renders as one, so
    skipping its image ends it). A waiting img2img request then answers 409."""

    @extend_schema(tags=TAGS, request=None, responses={200: OpenApiResponse(description="{}")})
    def post(self, request: Request) -> Response:
        generations.generation_interrupt_current(user=request.user)
        return Response({})


def _only_model() -> dict | None:
    """The one entry ``sd-models`` lists when the library offers none: the deployment's own
    model, or with no diffusion model the fill engine that runs, marked as one; None when the
    deployment's model could not be loaded (a worker said so)."""
    deployment = library_deployment_model_offered()
    if deployment:
        return a1111.deployment_model(deployment)
    fill = engine_config().fill_engine()
    return a1111.fill_engine_model(fill) if fill else None


class A1111SdModelsView(A1111View):
    """The diffusion models a job may name (``library_models_offered``); with none, the
    deployment's own model or the fill engine that runs."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="checkpoints")})
    def get(self, request: Request) -> Response:
        models = [a1111.sd_model(model) for model in library_models_offered()]
        only = None if models else _only_model()
        return Response(models or ([only] if only else []))


class A1111SamplersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="samplers")})
    def get(self, request: Request) -> Response:
        return Response(a1111.samplers())


class A1111SchedulersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="noise schedules")})
    def get(self, request: Request) -> Response:
        return Response(a1111.schedules())


class A1111OptionsView(A1111View):
    """``GET``: the options clients read, with the caller's checkpoint. ``POST`` with
    ``sd_model_checkpoint`` switches the checkpoint of the caller's own A1111 jobs (a client's
    "switch model"; never another user's). Other options are the deployment's, left as they
    are, as A1111 answers: ``null``."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="options")})
    def get(self, request: Request) -> Response:
        default = library_user_checkpoint(request.user) or (
            library_models_offered().filter(is_default=True).first()
        )
        only = None if default else (_only_model() or {}).get("title")
        return Response(a1111.options(default, only, settings.INPAINT_PREVIEW_EVERY))

    @extend_schema(
        tags=TAGS,
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiResponse(description="null, as A1111 answers")},
    )
    def post(self, request: Request) -> Response:
        options = request.data
        if not isinstance(options, dict):
            raise serializers.ValidationError(
                {"options": ["The options must be a JSON object, as GET answers them."]}
            )
        check_count(options, most=MAX_OPTIONS, what="options")
        title = options.get("sd_model_checkpoint")
        if title is not None and not isinstance(title, str):
            raise serializers.ValidationError(
                {"sd_model_checkpoint": ["A model's title, as GET /sdapi/v1/sd-models lists."]}
            )
        if title:
            library_user_checkpoint_set(request.user, _without_hash(title))
        return JsonResponse(None, safe=False)  # "null" (DRF renders None as no body at all)


class A1111ScriptsView(A1111View):
    """No A1111 scripts run here (webuiapi asks, to learn which extensions exist)."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="scripts")})
    def get(self, request: Request) -> Response:
        return Response({"txt2img": [], "img2img": []})


class PngInfoSerializer(serializers.Serializer):
    image = serializers.CharField()


class A1111PngInfoView(A1111View):
    """The generation parameters an image carries (DreamLayer's and A1111's PNGs both)."""

    @extend_schema(
        tags=TAGS, request=PngInfoSerializer, responses={200: OpenApiResponse(description="info")}
    )
    def post(self, request: Request) -> Response:
        serializer = PngInfoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = common.remote_upload(serializer.validated_data["image"], "image").read()
        return Response(a1111.png_info(images.png_texts(data)))


# ----- extras: upscaling ---------------------------------------------------------------------
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


class A1111ExtraSingleImageView(common.SubmitAndWaitView):
    """``POST /sdapi/v1/extra-single-image``: one picture upscaled. A resampler (Lanczos,
    nearest) runs here; a super-resolution model of the library runs as an upscale job on a
    worker (in the history), waited for like img2img. The output size is checked against
    UPSCALE_MAX_PIXELS before the picture is decoded."""

    authentication_classes = [BasicKeyAuthentication]
    error_shape = staticmethod(a1111.error_body)
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
            user=request.user,
            ask=serializer.ask(),
            upscaler=model.name,
            image_file=image,
            client=Generation.Client.A1111,
            api_key=common.api_key_of(request),
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
        with generation.images.get().file.open("rb") as handle:
            png = handle.read()
        return _extras_answer(info, [png], single=True)


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
    """The extras answer streamed from the PNG bytes (``a1111.extras_answer_stream``);
    ``done()`` once it is sent, or the client went away: the gate's ticket is let go then."""
    length, pieces = a1111.extras_answer_stream(info, pngs, single=single)

    async def sent() -> AsyncIterator[bytes]:
        try:
            async for piece in pieces:
                yield piece
        finally:
            if done is not None:
                done()

    response = StreamingHttpResponse(sent(), content_type="application/json")
    response["Content-Length"] = str(length)
    return response


# ----- what clients call at start-up ---------------------------------------------------------
class A1111FixedView(A1111View):
    """A start-up list that is fixed here: files DreamLayer has no use for (VAEs apart from a
    model's own, embeddings, hypernetworks, face restorers, styles, extensions) are empty
    lists, so a client shows "none" instead of stopping at a 404."""

    body: Any = None

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="A1111's shape")})
    def get(self, request: Request) -> Response:
        return Response(self.body)


class A1111RefreshView(A1111View):
    """``refresh-checkpoints`` and the like: the library is what staff scanned (``manage.py
    models scan``, the admin); a client's refresh reads it again at its next list."""

    @extend_schema(tags=TAGS, request=None, responses={200: OpenApiResponse(description="{}")})
    def post(self, request: Request) -> Response:
        return Response({})


class A1111UpscalersView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="upscalers")})
    def get(self, request: Request) -> Response:
        return Response(a1111.upscalers(list(selectors.library_upscaler_list())))


class A1111LorasView(A1111View):
    """The library's LoRAs, named as a prompt's ``<lora:name:weight>`` tag names them."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="LoRAs")})
    def get(self, request: Request) -> Response:
        return Response([a1111.lora(model) for model in selectors.library_lora_list()])


class A1111MemoryView(A1111View):
    """The web process' machine's memory (A1111's ``ram``); the GPUs are the workers'."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="memory")})
    def get(self, request: Request) -> Response:
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        free = os.sysconf("SC_AVPHYS_PAGES") * page
        return Response(
            {
                "ram": {"free": free, "used": total - free, "total": total},
                "cuda": {"error": "the models run on the workers (GET /api/health)"},
            }
        )


class ControlNetVersionView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="version")})
    def get(self, request: Request) -> Response:
        return Response({"version": a1111.CONTROLNET_API_VERSION})


class ControlNetModelListView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="model_list")})
    def get(self, request: Request) -> Response:
        return Response(a1111.controlnet_models(list(selectors.library_controlnet_list())))


class ControlNetModuleListView(A1111View):
    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="module_list")})
    def get(self, request: Request) -> Response:
        return Response(a1111.controlnet_modules())


class ControlNetSettingsView(A1111View):
    """One ControlNet unit runs per job here (more are refused or ignored, and said so)."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="settings")})
    def get(self, request: Request) -> Response:
        return Response({"control_net_unit_count": 1, "control_net_max_models_num": 1})


class QueueStatusView(A1111View):
    """Gradio's queue status, which Cyanic SD-Krita polls as its health check."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="queue")})
    def get(self, request: Request) -> Response:
        _, waiting = selectors.generation_current(user=request.user)
        return Response(a1111.queue_status(waiting))
