"""Inpainting, outpainting and editing by words through diffusers: the backend that runs a
batch of jobs on a loaded pipeline (``loading``), with the job's add-ons (``adapters``)."""

from __future__ import annotations

import gc
import logging
import time
from contextlib import ExitStack
from typing import Any

from .. import memory
from ..buckets import parse_sizes
from ..previews import latents_to_jpeg
from ..prompts import parse_weights, plain_text
from ..schedulers import make_scheduler
from ..types import (
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    EngineError,
    InvalidInput,
    ProgressCallback,
    ProgressEvent,
)
from . import graphs
from .adapters import (
    _apply_loras,
    _at_least,
    _blended,
    _controlnet_pipeline,
    _edit_pipeline,
    _load_ip_adapter,
    _remove_loras,
    control_image,
)
from .graphs import DEFAULT_CAPTURE_SECONDS
from .loading import (
    _PIPELINES,
    DEFAULT_MODEL,
    denoiser_of,
    family_of_model,
    load_pipeline,
    memory_plan_of,
    resolve_device,
    resolve_model,
    short_call,
)
from .picture_area import picture_area, working_area
from .steps import LatentReader, host_timesteps, step_cache

logger = logging.getLogger(__name__)


class DiffusersBackend:
    name = "diffusers"
    prefill = True  # outpainting starts from a PatchMatch fill of the new area
    uses_masked_content = True  # it starts from the picture's latents
    supports_batch = True
    max_pixels = max_hole_pixels = None  # brought to its working size
    context_share = 0.0  # the request's padding (A1111's only-masked padding) sets the crop

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        working_size: int | None = None,
        preview_every: int = 5,
        compile_unet: bool = False,
        cache_size: int = 1,
        configs: str | None = None,
        memory_plan: str = memory.AUTO,
        headroom: int = memory.DEFAULT_HEADROOM,
        companion: str | None = None,
        graph_sizes: str = "",
        graph_seconds: float = DEFAULT_CAPTURE_SECONDS,
    ):
        self.model = resolve_model(model)
        self.memory_plan = memory_plan
        self.headroom = headroom
        self.companion = companion
        self.family = family_of_model(self.model)
        self.edits = self.family.edits
        # An edit reads each job's pictures with its words: one job per pipeline call.
        self.supports_batch = not self.family.edits
        self.regions_in_one_call = self.family.capabilities.regions
        self.size_multiple = self.family.size_multiple
        self.cache_size = cache_size
        self.configs = configs
        self.device = resolve_device(device)
        self.working_size = working_size or self.family.working_size
        self.preview_every = preview_every  # 0 = no previews
        self.compile_unet = compile_unet
        try:  # CUDA_GRAPH_SIZES: the sizes a crop is brought to, and graphed (``graphs``)
            self.working_sizes = parse_sizes(graph_sizes, self.working_size, self.size_multiple)
        except ValueError as exc:
            raise EngineError(str(exc)) from exc
        self.graph_seconds = graph_seconds

    @property
    def loaded(self) -> bool:
        return (self.model, self.device, self.compile_unet) in _PIPELINES

    def load(self) -> Any:
        pipe = load_pipeline(
            self.model,
            self.device,
            self.compile_unet,
            self.working_size,
            self.cache_size,
            self.configs,
            self.memory_plan,
            self.headroom,
            self.companion,
        )
        # CUDA graphs of the declared sizes, once a pipeline, at its load, where a job could
        # replay them: on CUDA, uncompiled, all on the GPU.
        capturable = graphs.not_capturable(
            device=self.device,
            sizes=self.working_sizes,
            compiled=self.compile_unet,
            plan=memory_plan_of(self.model, self.device, self.compile_unet),
        )
        if capturable is None:
            graphs.capture(
                pipe,
                denoiser_of(pipe),
                self.working_sizes,
                self.graph_seconds,
                lambda width, height: short_call(pipe, self.family, width, height),
            )
        return pipe

    def _graph_plan(self, call: BackendCall) -> str | None:
        """Why ``call`` runs its denoiser eager, or None: from a CUDA graph
        (``graphs.eager_because``)."""
        pipe = _PIPELINES.get((self.model, self.device, self.compile_unet))
        held = graphs.graphs_of(pipe) if pipe is not None else None
        changed_by = next(
            (
                what
                for what, used in (
                    ("a LoRA", call.loras),
                    ("a ControlNet", call.controlnet),
                    ("an IP-Adapter", call.ip_adapter),
                    ("layers painted in one call", call.regions),
                    ("reference pictures", call.reference_images),
                    ("an erase adapter", call.eraser),
                    ("the fast tier's step cache", call.speed == "fast"),
                )
                if used
            ),
            None,
        )
        return graphs.eager_because(
            device=self.device,
            sizes=self.working_sizes,
            compiled=self.compile_unet,
            plan=memory_plan_of(self.model, self.device, self.compile_unet),
            changed_by=changed_by,
            size=call.image.size,
            captured=held.sizes if held is not None else set(),
        )

    def _graph_said(self, why: str | None, replayed: Any) -> dict[str, Any]:
        """A job's metadata on its denoiser's CUDA graph, where CUDA_GRAPH_SIZES is on."""
        if not self.working_sizes:
            return {}
        if why is None and replayed is not None and replayed.replays == 0:
            why = "no graph was captured for this batch or this prompt's length"
        return {"cuda_graph": "replayed" if why is None else f"eager: {why}"}

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        return self.inpaint_batch([call], [progress], [is_cancelled])[0]

    def inpaint_batch(
        self,
        calls: list[BackendCall],
        progresses: list[ProgressCallback],
        cancel_checks: list[CancelCheck],
    ) -> list[BackendOutput]:
        """One pipeline call for several jobs of one size, step count, strength, guidance and
        scheduler (``runner.batch_key``): one batch entry per sample of each job, each with its
        own prompt, image, mask and seed. Progress goes to every job; the batch stops when
        every job in it is cancelled (a job cancelled alone is already recorded as cancelled,
        and its images are dropped)."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        from .conditioning import encode  # noqa: PLC0415 - torch, as above
        from .soft import SoftBlend, has_gray  # noqa: PLC0415 - torch, as above

        started = time.perf_counter()
        had_it = self.loaded
        pipe = self.load()
        load_seconds = None if had_it else round(time.perf_counter() - started, 3)
        first = calls[0]
        width, height = first.image.size
        steps = first.num_inference_steps
        # At least one denoising step: diffusers refuses a strength that leaves none.
        strength = max(first.denoising_strength, 1.0 / steps)
        entries = [(call, seed) for call in calls for seed in call.seeds]
        generators = [torch.Generator(device="cpu").manual_seed(seed) for _, seed in entries]

        def all_cancelled() -> bool:
            return all(check() for check in cancel_checks)

        family = self.family
        if family.edits:
            return [
                self._edit(pipe, call, progress, check, load_seconds)
                for call, progress, check in zip(calls, progresses, cancel_checks, strict=True)
            ]
        on_step_end = self._step_callback(calls, progresses, all_cancelled)
        if all_cancelled():
            raise Cancelled()
        soft = first.soft and family.capabilities.soft_inpainting
        control = first.controlnet
        if (
            (control and not family.capabilities.controlnet)
            or (first.loras and not family.capabilities.loras)
            or (first.ip_adapter and not family.capabilities.ip_adapter)
        ):
            raise EngineError(f"{family.label} models take no ControlNet, LoRA or IP-Adapter here.")
        if first.regions and (control or first.ip_adapter):
            raise InvalidInput(
                "Layers painted in one call take no ControlNet or IP-Adapter here: "
                "send the job without them.",
                field="layers",
            )
        runner = _controlnet_pipeline(pipe, family, control) if control else pipe
        default_scheduler = runner.scheduler
        adapters: list[str] = []
        ip_loaded = False
        extra: dict[str, Any] = dict(family.call_arguments)
        if control:
            extra |= {
                "control_image": torch.cat(
                    [control_image(call.image, call.hole) for call, _ in entries]
                ).to(pipe.unet.device, pipe.unet.dtype),
                "controlnet_conditioning_scale": control.conditioning_scale,
                "control_guidance_start": control.guidance_start,
                "control_guidance_end": control.guidance_end,
            }
        try:
            if first.scheduler and family.capabilities.schedulers:
                runner.scheduler = make_scheduler(first.scheduler, default_scheduler.config)
            adapters = _apply_loras(pipe, first.loras)
            if first.ip_adapter:  # one job a batch (runner.batch_key): its reference picture
                ip_loaded = True  # from here on, unloaded whatever happens
                _load_ip_adapter(runner, first.ip_adapter)
                extra["ip_adapter_image"] = first.reference_images[0]
            with torch.inference_mode(), ExitStack() as regional:
                if soft and any(has_gray(call.weights) for call in calls):
                    on_step_end = _blended(on_step_end, SoftBlend(runner, entries))
                if first.regions:  # one job a batch (runner.batch_key)
                    conditioning = self._regions(runner, first, len(entries), regional)
                elif family.text_encoding == "weighted":
                    # Weighted prompts, long prompts in chunks, clip skip: each prompt
                    # encoded on its own, so an entry's embeddings do not depend on its batch.
                    conditioning = encode(
                        pipe,
                        [call.prompt for call, _ in entries],
                        [call.negative_prompt for call, _ in entries],
                        first.clip_skip,
                    )
                else:  # the pipeline encodes the words as written (no weights)
                    conditioning = {
                        "prompt": [plain_text(parse_weights(call.prompt)) for call, _ in entries]
                    }
                    if family.capabilities.negative_prompt:
                        conditioning["negative_prompt"] = [
                            plain_text(parse_weights(call.negative_prompt, field="negative_prompt"))
                            for call, _ in entries
                        ]
                # One batch entry per sample, so sample i draws every random number (VAE
                # posterior, noise) from generator i alone: each image is reproducible
                # from its own seed, in a batch or alone.
                regional.enter_context(host_timesteps(runner, denoiser_of(pipe).device))
                graph_why = self._graph_plan(first)
                replayed = regional.enter_context(
                    graphs.replaying(graphs.graphs_of(pipe), graph_why is None)
                )
                fast = regional.enter_context(step_cache(denoiser_of(pipe), first.speed))
                result = runner(
                    **conditioning,
                    **extra,
                    image=[call.image for call, _ in entries],
                    mask_image=[call.hole for call, _ in entries],
                    height=height,
                    width=width,
                    strength=strength,
                    num_inference_steps=steps,
                    guidance_scale=first.guidance_scale,
                    num_images_per_prompt=1,
                    generator=generators,
                    callback_on_step_end=on_step_end,
                    callback_on_step_end_tensor_inputs=["latents"],
                    output_type="pil",
                )
        except torch.OutOfMemoryError as exc:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EngineError(
                "The GPU ran out of memory for this job; try a smaller image, fewer samples "
                "or inpaint_area=masked."
            ) from exc
        finally:
            used_scheduler = type(runner.scheduler).__name__
            runner.scheduler = default_scheduler  # the next job starts from the model's own
            if adapters:  # and without this job's LoRAs: the model's own weights again
                _remove_loras(pipe)
            if ip_loaded:  # and without its IP-Adapter
                runner.unload_ip_adapter()
        outputs, images = [], list(result.images)
        for call in calls:
            outputs.append(
                BackendOutput(
                    images=images[: len(call.seeds)],
                    model=self.model,
                    metadata={
                        "scheduler": (family.capabilities.schedulers and call.scheduler)
                        or used_scheduler,
                        "scheduler_class": used_scheduler,
                        **self._metadata(pipe, load_seconds),
                        "batched_jobs": len(calls),
                        **({"soft_inpainting": True} if soft and has_gray(call.weights) else {}),
                        **self._graph_said(graph_why, replayed),
                        **fast,
                    },
                )
            )
            images = images[len(call.seeds) :]
        return outputs

    def _regions(
        self, pipe: Any, call: BackendCall, samples: int, regional: ExitStack
    ) -> dict[str, Any]:
        """The pipeline arguments of a call with regions (``BackendCall.regions``), each of
        its ``samples`` alike: the whole picture's prompt and each region's encoded on their
        own and laid side by side, each region's tokens seen only by its pixels
        (``regional``): on a UNet through its cross-attention's processors until ``regional``
        closes (its own processors then again), on FLUX through the joint attention's mask."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        from .conditioning import encode_segments  # noqa: PLC0415 - torch, as above
        from .regional import RegionPlan, regional_attention  # noqa: PLC0415 - as above

        prompts = [call.prompt, *(region.prompt for region in call.regions)]
        masks = [region.mask for region in call.regions]
        width, height = call.image.size
        if self.family.text_encoding == "weighted":  # SD 1.5, SDXL: a UNet
            embeddings, lengths = encode_segments(
                pipe, prompts, call.negative_prompt, call.clip_skip
            )
            scale = pipe.vae_scale_factor  # pixels a latent pixel spans
            plan = RegionPlan(masks, lengths, (height // scale, width // scale))
            regional.enter_context(regional_attention(pipe.unet, plan))
            return {key: torch.cat([value] * samples) for key, value in embeddings.items()}
        return self._joint_regions(pipe, call, samples)

    def _joint_regions(self, pipe: Any, call: BackendCall, samples: int) -> dict[str, Any]:
        """The pipeline arguments of a call with regions on a transformer whose text and
        picture tokens share one attention (FLUX.1 Fill, FLUX.2 [klein]): each prompt's
        embeddings side by side (FLUX.1's pooled one the whole picture's) and the attention's
        mask (``regional.joint_bias``)."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        from .regional import RegionPlan, joint_bias  # noqa: PLC0415 - torch, as above

        family = self.family
        if family.attention_argument is None:
            raise EngineError(f"{family.label} models paint no regions in one call here.")
        device = pipe._execution_device

        def encoded(text: str) -> tuple:
            return pipe.encode_prompt(prompt=plain_text(parse_weights(text)), device=device)

        parts = [encoded(text) for text in (call.prompt, *(r.prompt for r in call.regions))]
        lengths = [part[0].shape[1] for part in parts]
        width, height = call.image.size
        scale = pipe.vae_scale_factor * 2  # a picture token: 2 x 2 latent pixels
        plan = RegionPlan(
            [region.mask for region in call.regions], lengths, (height // scale, width // scale)
        )
        bias = joint_bias(plan, pipe.transformer.dtype, device, copies=family.picture_tokens)
        embeds = torch.cat([part[0] for part in parts], dim=1)
        arguments: dict[str, Any] = {
            "prompt_embeds": torch.cat([embeds] * samples),
            family.attention_argument: {"attention_mask": bias},
        }
        if len(parts[0]) == 3:  # FLUX.1: (embeddings, pooled, ids)
            arguments["pooled_prompt_embeds"] = torch.cat([parts[0][1]] * samples)
        if family.edits and family.capabilities.guidance:
            # FLUX.2 [klein] base guides with an empty prompt of its own; the mask is shared
            # by both passes, so its words are laid out as the prompts' are.
            empty = encoded("")[0]
            negative = torch.cat([empty[:, :length] for length in lengths], dim=1)
            arguments["negative_prompt_embeds"] = torch.cat([negative] * samples)
        return arguments

    def _metadata(self, pipe: Any, load_seconds: float | None) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": str(denoiser_of(pipe).dtype).removeprefix("torch."),
            "family": self.family.name,
            "memory_plan": memory_plan_of(self.model, self.device, self.compile_unet),
            **({"model_load_seconds": load_seconds} if load_seconds else {}),
        }

    def _step_callback(
        self,
        calls: list[BackendCall],
        progresses: list[ProgressCallback],
        all_cancelled: CancelCheck,
        sample: tuple[int, int] = (0, 1),
    ) -> Any:
        """The pipeline's ``callback_on_step_end``: progress (and a latent preview every
        ``preview_every`` steps) to each call's job, and ``Cancelled`` once every job is.
        ``sample`` (index, count): one call's samples run one pipeline call each, and the
        steps count across them."""
        width, height = calls[0].image.size
        per_latent = self.family.preview.per_latent  # 8 px for most VAEs
        latent_grid = (height // per_latent, width // per_latent)
        index, count = sample
        # Each job's first sample, read without waiting (``steps.LatentReader``): its preview
        # goes out with the first step after the copy is done.
        readers = [LatentReader() for _ in calls]

        def on_step_end(pipeline: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            done, total = step + 1, pipeline.num_timesteps
            offset = 0
            for call, progress, reader in zip(calls, progresses, readers, strict=True):
                wanted = self.preview_every and (done % self.preview_every == 0) and done < total
                if wanted and not reader.pending:
                    reader.start(kwargs["latents"][offset])
                latents = reader.take() if done < total else None
                preview = (
                    None
                    if latents is None
                    else latents_to_jpeg(latents, self.family.preview, latent_grid)
                )
                progress(
                    ProgressEvent(step=index * total + done, total=count * total, preview=preview)
                )
                offset += len(call.seeds)
            if all_cancelled():
                raise Cancelled()
            return kwargs

        return on_step_end

    def _edit(
        self,
        pipe: Any,
        call: BackendCall,
        progress: ProgressCallback,
        is_cancelled: CancelCheck,
        load_seconds: float | None,
    ) -> BackendOutput:
        """An instruction edit (an edit family). A hole over the whole picture (a request
        without a mask) runs the family's edit pipeline on the picture; a hole inside it runs
        the mask pipeline, which regenerates the hole only, or, with reference pictures
        (which only the edit pipeline reads), the edit pipeline, its result composited
        through the mask by the runner as every result is. Erase mode's adapter
        (``call.eraser``) runs the edit pipeline too (``_erasing``). One pipeline call per
        sample."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        family = self.family
        with ExitStack() as adapted:
            if call.eraser is not None:
                runner, words, arguments, said = self._erasing(pipe, call, adapted)
            else:
                runner, words, arguments, said = self._editing(pipe, call)
            images = []
            graph_why = self._graph_plan(call)
            for index, seed in enumerate(call.seeds):
                if is_cancelled():
                    raise Cancelled()
                area = working_area(family, self.working_size)
                with (
                    torch.inference_mode(),
                    picture_area(runner, area),
                    host_timesteps(runner, denoiser_of(pipe).device),
                    graphs.replaying(graphs.graphs_of(pipe), graph_why is None) as replayed,
                    step_cache(denoiser_of(pipe), call.speed) as fast,
                ):
                    result = runner(
                        **words,
                        height=call.image.height,
                        width=call.image.width,
                        generator=torch.Generator(device="cpu").manual_seed(seed),
                        callback_on_step_end=self._step_callback(
                            [call], [progress], is_cancelled, (index, len(call.seeds))
                        ),
                        callback_on_step_end_tensor_inputs=["latents"],
                        output_type="pil",
                        **arguments,
                    )
                images.append(result.images[0])
                said |= getattr(result, "said", {})  # a modular pipeline's (its upsampler)
        return BackendOutput(
            images=images,
            model=self.model,
            metadata={
                **self._metadata(pipe, load_seconds),
                **said,
                "edit_pipeline": type(runner).__name__,
                "batched_jobs": 1,
                **self._graph_said(graph_why, replayed),
                **fast,
            },
        )

    def _editing(self, pipe: Any, call: BackendCall) -> tuple[Any, dict, dict, dict]:
        """An edit's pipeline, words, other arguments and what its answer says (``_edit``)."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        family = self.family
        references = [_at_least(r, family.min_picture_side) for r in call.reference_images]
        if len(references) > family.reference_images:
            raise InvalidInput(
                f"{family.label} reads at most {family.reference_images} reference pictures "
                f"beside the one it edits; {len(references)} were given.",
                field="reference_images",
            )
        if call.regions and references:
            raise InvalidInput(
                "Layers painted in one call take no reference pictures here: send the job "
                "without them.",
                field="layers",
            )
        whole = call.hole.getextrema()[0] == 255
        steps = call.num_inference_steps
        arguments: dict[str, Any] = {
            **family.call_arguments,
            family.guidance_argument: call.guidance_scale,
            "num_inference_steps": steps,
        }
        # A family with no mask argument reads the mask as a picture after the one it edits,
        # or as a layout box (its bounding box) the words describe.
        reads_mask = not (whole or family.mask_argument)
        as_picture = reads_mask and family.mask_as == "picture"
        mask_picture = [call.hole.convert("RGB")] if as_picture else []
        if reads_mask and family.mask_as == "box":
            arguments["mask_box"] = call.hole
        if (whole or references or reads_mask) and not call.regions:  # regions: the mask's
            runner = _edit_pipeline(pipe, family)
            arguments["image"] = (
                [call.image, *mask_picture, *references] if family.reference_images else call.image
            )
        else:
            runner = pipe
            arguments |= {"image": call.image, family.mask_argument: call.hole}
            if family.takes_strength:
                arguments["strength"] = max(call.denoising_strength, 1.0 / steps)
        if family.capabilities.negative_prompt:
            negative = plain_text(parse_weights(call.negative_prompt, field="negative_prompt"))
            arguments["negative_prompt"] = negative or " "  # Qwen's own examples: one space
        if family.area_argument:
            arguments[family.area_argument] = call.image.width * call.image.height
        if call.regions:  # each region's words seen by its pixels only
            with torch.inference_mode():
                words = self._joint_regions(runner, call, 1)
        else:
            words = {"prompt": plain_text(parse_weights(call.prompt))}
        said = {"edit": "whole" if whole else "masked", "reference_images": len(references)}
        if reads_mask:
            said["mask_as"] = family.mask_as
        return runner, words, arguments, said

    def _erasing(
        self, pipe: Any, call: BackendCall, adapted: ExitStack
    ) -> tuple[Any, dict, dict, dict]:
        """Erase mode with the job's erase adapter (``call.eraser``), as ``_editing``: the
        family's edit pipeline with the adapter's LoRA on (off again when ``adapted`` closes),
        reading the crop and its hole (white: remove, as RGB) as its two reference pictures,
        told by the adapter's prompt embedding (no text encoder runs) or its instruction; the
        family's own steps (the distilled 4), no guidance. The runner composites the result
        through the grown mask as every result is."""
        from safetensors.torch import load_file  # noqa: PLC0415 - torch: heavy, as above

        family, eraser = self.family, call.eraser
        denoiser = denoiser_of(pipe)
        if eraser.embedding:
            embeds = load_file(eraser.embedding)["prompt_embeds"]
            words = {"prompt_embeds": embeds.to(denoiser.device, denoiser.dtype)}
        else:
            words = {"prompt": eraser.instruction}
        references = [
            _at_least(picture, family.min_picture_side)
            for picture in (call.image, call.hole.convert("RGB"))
        ]
        steps = family.capabilities.default_steps
        arguments = {**family.call_arguments, "image": references, "num_inference_steps": steps}
        _apply_loras(pipe, ((eraser.lora, 1.0),))
        adapted.callback(_remove_loras, pipe)  # the model's own weights again
        said = {
            "edit": "erase",
            "reference_images": len(references),
            "eraser_prompt": "embedding" if eraser.embedding else "instruction",
            "steps": steps,
        }
        return _edit_pipeline(pipe, family), words, arguments, said
