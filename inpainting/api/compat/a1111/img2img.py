"""``POST /sdapi/v1/img2img``: A1111's request read into DreamLayer's parameters (samplers,
soft inpainting, ControlNet units, checkpoint overrides) and its answer built from the job;
``POST /sdapi/v1/txt2img``: the same, as an inpaint of an empty canvas that the mask covers
(a diffusion model's job)."""

from __future__ import annotations

import time
from dataclasses import replace

from asgiref.sync import sync_to_async
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .... import selectors
from ....answers import a1111
from ....answers.native import img2img_processing
from ....conf import engine_config
from ....engine.engines import runs_a_model
from ....engine.images import PARAMETERS_KEY
from ....engine.parameters import check_controlnet
from ....errors import ClientError, cut, echoed
from ....models import Generation
from ....params import GenerationParams
from ....services import generations, images
from ....services.a1111 import a1111_checkpoint
from ....services.library import library_model_named
from ....uploads import check_dimensions
from ....waiting import wait_until_finished
from ... import common
from ...serializers import (
    BoundedDictField,
    BoundedListField,
    ChoiceField,
    check_count,
    field_for,
    first_error,
    requester,
)
from .base import TAGS, A1111Api, without_hash

#: ControlNet preprocessors that mean what DreamLayer's ControlNet does (inpaint conditioning).
INPAINT_MODULES = ("", "none", "inpaint", "inpaint_only", "inpaint_global_harmonious")
#: ControlNet units one request may send (the extension's own limit on units is 10).
MAX_CONTROLNET_UNITS = 10
#: ``alwayson_scripts`` entries one request may name, and ``override_settings`` and ``styles``.
MAX_SCRIPTS = 32
MAX_OVERRIDES = 64
MAX_STYLES = 32
#: AUTOMATIC1111's soft-inpainting script (lower case), and its tuning arguments' defaults:
#: schedule bias, preservation strength, transition contrast boost, mask influence, difference
#: threshold, difference contrast.
SOFT_SCRIPT = "soft inpainting"
SOFT_DEFAULTS = (1, 0.5, 4, 0, 0.5, 2)


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
        data["sampler"], data["sampler_title"], data["schedule"], data["notes"] = self._sampler(
            data
        )
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
    def _sampler(data) -> tuple[str | None, str, str, list[dict[str, str]]]:
        """DreamLayer's scheduler for A1111's sampler and noise schedule (None: the model's),
        A1111's name of the sampler and of the schedule that run, and the warnings of a
        fallback: as A1111 1.10 does, a sampler it does not know runs the default and a
        schedule it does not know runs automatic; a Karras schedule runs with DPM++ 2M only
        (another sampler runs its own schedule), and a name ending in a schedule's name or
        label ("Euler a Karras") names that schedule."""
        name = (data.get("sampler_name") or data.get("sampler_index") or "").strip()
        schedule, warned = a1111.schedule_of(data.get("scheduler") or "")
        notes = [{"field": "scheduler", "message": warned}] if warned else []
        for key, (label, runs) in a1111.SCHEDULES.items():
            for suffix in (f" {key}", f" {label}"):
                if key != "automatic" and name.lower().endswith(suffix.lower()):
                    name, schedule = name[: -len(suffix)].strip(), runs
        if not name:
            return None, "", schedule, notes
        available = {s["name"]: s for s in a1111.samplers()}
        found = next(
            (n for n, s in available.items() if name.lower() in (n.lower(), *s["aliases"])), None
        )
        if found is None:
            notes.append(
                {"field": "sampler_name", "message": f"Sampler not found: {echoed(name)}; the "
                 f"model's own sampler ran. Samplers here: {', '.join(available)} "
                 "(GET /sdapi/v1/samplers)."}
            )  # fmt: skip
            return None, "", schedule, notes
        if found.endswith(" Karras"):
            found, schedule = found.removesuffix(" Karras"), "karras"
        if schedule == "karras" and f"{found} Karras" in available:
            return a1111.SAMPLERS[f"{found} Karras"][0], f"{found} Karras", "karras", notes
        if schedule == "karras":
            notes.append(
                {"field": "scheduler", "message": f"No Karras schedule for {echoed(found)} here "
                 "(DPM++ 2M only); the sampler's own schedule (automatic) ran."}
            )  # fmt: skip
            schedule = "automatic"
        return a1111.SAMPLERS[found][0], found, schedule, notes

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
            check_controlnet(
                unit["weight"],
                unit["guidance_start"],
                unit["guidance_end"],
                field="alwayson_scripts",
            )
            controlnet = {
                "name": without_hash(unit["model"]),
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
        checkpoint = without_hash(str(overrides.get("sd_model_checkpoint") or ""))
        if checkpoint and not prompt.strip():
            # Without a prompt the job removes (the removal engine); no diffusion model runs.
            data["ignored"].append("sd_model_checkpoint (no prompt: the removal engine runs)")
            checkpoint = ""
        model = library_model_named(checkpoint, field="override_settings", user=requester(self))
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
                "mode": a1111.RESIZE_MODES[data.get("resize_mode", 0)],
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
        for internal in ("sampler", "sampler_title", "schedule", "notes", "controlnet",
                         "ignored", "soft"):  # fmt: skip
            data.pop(internal, None)
        return {**data, "init_images": None, "mask": None}


@extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="images, parameters, info")})
class A1111Img2ImgView(A1111Api, common.SubmitAndWaitView):
    """A request is ``n_iter`` jobs, one an iteration (each ``batch_size`` images, denoised
    together), run in order as A1111 runs them (``generations.generation_repeat``): an
    interrupt keeps the iterations finished before it, a skip drops the current one only."""

    input_serializer = A1111Img2ImgSerializer
    blocking = True

    def submit(self, request: Request, serializer: A1111Img2ImgSerializer) -> common.Submitted:
        data = serializer.validated_data
        params = self.with_checkpoint(serializer.to_params(), request.user)
        if not data.get("mask"):  # checked before the picture is fetched
            generations.generation_check_whole_picture(params, field="init_images")
        if data["n_iter"] > 1:  # room for every iteration, before the picture is fetched
            generations.quota_check(request.user, lock=False, jobs=data["n_iter"])
        image = common.remote_upload(data["init_images"][0], "init_images")
        mask = (
            common.remote_upload(data["mask"], "mask")
            if data.get("mask")
            else images.whole_image_mask(image, field="init_images")
        )
        return self.submitted(request, serializer, params, image, mask)

    def submitted(self, request: Request, serializer, params, image, mask) -> common.Submitted:
        """The request's jobs: the first of ``image`` and ``mask``, the other iterations
        repeated from it (none stored if they cannot all be)."""
        data = serializer.validated_data
        n_iter, batch_size = data["n_iter"], data["batch_size"]
        generation = common.generation_create_for(
            request,
            Generation.Client.A1111,
            image,
            mask,
            replace(params, samples=batch_size),
            extra_metadata={"a1111": {"ignored": data["ignored"]}},
        )
        jobs = [generation]
        if n_iter > 1 and generation.metadata.get("sequence"):  # an idempotent replay
            jobs = selectors.generation_sequence(generation)
        elif n_iter > 1:
            try:
                jobs += generations.generation_repeat(
                    generation=generation, count=n_iter - 1, seed_step=batch_size
                )
            except ClientError:
                generations.generation_delete(generation=generation)
                raise
        context = {**self.context_of(serializer), "jobs": [job.pk for job in jobs]}
        return common.Submitted(generation, context=context)

    @staticmethod
    def with_checkpoint(
        params: GenerationParams, user, *, removes: bool = True
    ) -> GenerationParams:
        """A job that names no model runs the checkpoint the caller chose with ``POST
        /sdapi/v1/options``, if any; ``removes``: a prompt-less one removes (no model)."""
        if params.model is not None or (removes and not params.prompt.strip()):
            return params
        chosen = a1111_checkpoint(user)
        return replace(params, model=chosen.name if chosen else None)

    @staticmethod
    def context_of(serializer: A1111Img2ImgSerializer) -> dict:
        """What the answer needs from the request."""
        data = serializer.validated_data
        return {
            "echo": serializer.echo(),
            "sampler": data["sampler_title"] or None,
            "schedule": data["schedule"],
            "notes": data["notes"],
            "batch_size": data["batch_size"],
            "n_iter": data["n_iter"],
            "ignored": data["ignored"],
            "send_images": data["send_images"],
        }

    async def finish(self, request: Request, submitted: common.Submitted):
        """Wait for each iteration in turn, within IMG2IMG_WAIT_SECONDS in all."""
        deadline = time.monotonic() + settings.IMG2IMG_WAIT_SECONDS
        for pk in submitted.context["jobs"]:
            await wait_until_finished(pk, max(0.0, deadline - time.monotonic()))
        return await sync_to_async(self._answer)(request, submitted)

    def answer(self, request: Request, generation: Generation, context: dict) -> Response:
        jobs = [
            found
            for pk in context["jobs"]
            if (found := selectors.generation_get(user=request.user, generation_id=pk))
        ]
        # Interrupted (A1111's interrupt or skip, or a cancel): A1111 answers 200 with the
        # images finished before it, so its clients show what there is instead of an error.
        interrupted = any(job.status == Generation.Status.CANCELLED for job in jobs)
        for job in jobs:
            if job.status == Generation.Status.CANCELLED:
                continue
            problem = common.unfinished(job, blocking=True)
            if problem is not None:
                code, message = problem
                body = a1111.error_body(code, message, {})
                if code == 504:  # where to fetch it when it is done
                    body.update(img2img_processing(job, common.base_url(request)))
                return Response(body, status=code)
        pngs, texts, pictures = [], [], []
        for job in jobs:
            for image in job.images.all():
                with image.file.open("rb") as handle:
                    png = handle.read()
                pngs.append(png)
                pictures.append(image)
                texts.append(a1111.infotext(images.png_texts(png).get(PARAMETERS_KEY, ""), job))
        # The job's plan, by id: the library model it ran (none after a fallback).
        model = generation.library_model if runs_a_model(generation.engine) else None
        info = a1111.info(
            generation,
            pictures=pictures,
            sampler=context["sampler"],
            schedule=context["schedule"],
            batch_size=context["batch_size"],
            n_iter=context["n_iter"],
            texts=texts,
            model_hash=(model.sha256[:10] or None) if model else None,
            ignored=context["ignored"],
            notes=context["notes"],
            interrupted=interrupted,
        )
        sent = pngs if context["send_images"] else []
        return Response(a1111.img2img_body(sent, context["echo"], info))


class A1111Txt2ImgSerializer(A1111Img2ImgSerializer):
    """``txt2img``: img2img's fields without a picture, its mask or how they are resized; the
    hires fix (``enable_hr``) is named in ``info.ignored``."""

    init_images = None
    mask = None
    resize_mode = None
    enable_hr = serializers.BooleanField(required=False, allow_null=True, default=False)

    def validate(self, data):
        data = super().validate(data)
        if data.get("enable_hr"):
            data["ignored"].append("enable_hr (no hires fix here: the size asked for is painted)")
        return data

    def to_params(self) -> GenerationParams:
        """An inpaint of an empty canvas of ``width`` x ``height``, every pixel masked and
        denoised from noise (strength 1), the whole canvas at once."""
        return replace(
            super().to_params(),
            denoising_strength=1.0,
            masked_content="noise",
            inpaint_area="whole",
            mask_blur=0,
            invert_mask=False,
            soft=False,
            resize=None,
        )

    def echo(self) -> dict:
        echoed_back = super().echo()
        for picture in ("init_images", "mask"):
            echoed_back.pop(picture)
        return echoed_back


@extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="images, parameters, info")})
class A1111Txt2ImgView(A1111Img2ImgView):
    """Text to image (what openOutpaint's Dream over an empty part of its canvas and Open
    WebUI's generation send), when a diffusion model runs; without one, A1111's error body
    saying that one is needed."""

    input_serializer = A1111Txt2ImgSerializer

    def submit(self, request: Request, serializer: A1111Txt2ImgSerializer) -> common.Submitted:
        data = serializer.validated_data
        params = self.with_checkpoint(serializer.to_params(), request.user, removes=False)
        generations.generation_check_whole_picture(params, field="prompt", kind="txt2img")
        if data["n_iter"] > 1:  # room for every iteration, before the canvas is made
            generations.quota_check(request.user, lock=False, jobs=data["n_iter"])
        canvas, mask = images.blank_canvas(data["width"], data["height"], user=request.user)
        return self.submitted(request, serializer, params, canvas, mask)
