"""The validated parameters of a generation, stored as one JSON document on the row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from PIL import Image

from .engine import (
    ControlNetUse,
    EraserUse,
    InpaintRequest,
    InvalidInput,
    IpAdapterUse,
    MaskOptions,
    Outpaint,
    Resize,
)
from .engine.families import FAMILIES, Family
from .engine.layers import layer_of
from .engine.parameters import PARAMETERS, number
from .engine.prompts import parse_weights, split_loras
from .engine.upscale import summary as upscale_summary
from .errors import echoed

P = PARAMETERS


def _set_by_compat_apis(label: str) -> dict:
    """Field metadata of a parameter only compatible APIs set: its label for people, and
    that a table leaves it out while it has its default."""
    return {"label": label, "compat_only": True}


@dataclass(frozen=True)
class GenerationParams:
    """Every parameter of a job; defaults and ranges come from ``engine.parameters``."""

    prompt: str = P["prompt"].default
    negative_prompt: str = P["negative_prompt"].default
    denoising_strength: float = P["denoising_strength"].default
    num_inference_steps: int | None = P["num_inference_steps"].default  # None: the model's
    guidance_scale: float | None = P["guidance_scale"].default  # None: the model's
    seed: int | None = P["seed"].default  # as requested; None = random
    samples: int = P["samples"].default
    mask_mode: str = P["mask_mode"].default
    invert_mask: bool = P["invert_mask"].default
    soft: bool = P["soft"].default
    mask_blur: int = P["mask_blur"].default
    mask_grow: int = P["mask_grow"].default
    # Set by compatible APIs only (their mask rules), never by a client directly.
    exact_mask_size: bool = field(default=False, metadata=_set_by_compat_apis("Exact mask size"))
    mask_threshold: int | None = field(default=None, metadata=_set_by_compat_apis("Mask threshold"))
    mask_alpha: str = field(default="transparent", metadata=_set_by_compat_apis("Mask alpha"))
    inpaint_area: str = P["inpaint_area"].default
    padding: int = P["padding"].default
    # {"left", "right", "top", "bottom"} or {"width", "height", "anchor"}
    outpaint: dict | None = field(default=None, metadata={"label": "Outpaint"})
    clip_skip: int = P["clip_skip"].default
    # [{"name": a library LoRA, "weight": -2..2}]; <lora:name:weight> tags in the prompt add more.
    loras: list | None = field(default=None, metadata={"label": "LoRAs"})
    # {"name": a library ControlNet, "conditioning_scale", "guidance_start", "guidance_end"}
    controlnet: dict | None = field(default=None, metadata={"label": "ControlNet"})
    # {"name": a library IP-Adapter, "scale": 0..1}: the job's reference picture steers it.
    ip_adapter: dict | None = field(default=None, metadata={"label": "IP-Adapter"})
    # AUTOMATIC1111's img2img: {"width", "height", "mode"} the input is brought to first, and
    # what a diffusion model starts the masked area from (engine.types.MASKED_CONTENT).
    resize: dict | None = field(default=None, metadata=_set_by_compat_apis("Resize"))
    masked_content: str = field(default="original", metadata=_set_by_compat_apis("Masked content"))
    # Layers, bottom up: [{"name", "prompt"}], each with its mask (the job's GenerationLayer
    # rows, same order); the area regenerated is their union unless the job has its own mask.
    layers: list | None = field(default=None, metadata={"label": "Layers", "when_set": True})
    # A split job's: {"layers", "resolution"} (``services.splits``).
    split: dict | None = field(
        default=None, metadata={"label": "Split into layers", "when_set": True}
    )
    # An upscale job's: {"width", "height", "factor", "upscaler"} (``services.upscale``).
    upscale: dict | None = field(default=None, metadata={"label": "Upscale"})
    scheduler: str | None = P["scheduler"].default  # None = the model's own
    speed: str = P["speed"].default
    # An inpaint's table leaves erase mode's fields out (``table``).
    mode: str = field(default=P["mode"].default, metadata={"when_set": True})
    dilate_pixels: int = P["dilate_pixels"].default
    background: str = field(default=P["background"].default, metadata={"when_set": True})
    engine: str | None = P["engine"].default  # as requested; None = server default
    model: str | None = P["model"].default  # a library model's name; None = the default

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def table(self, *, leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """Every parameter as (label, value) for people, in definition order; labels come from
        ``engine.parameters`` (and this class's fields for the ones only it has). An upscale
        job's one row says what it made."""
        if self.upscale:
            return [("Upscale", upscale_summary(self.upscale))]
        rows = []
        for item in fields(self):
            value = getattr(self, item.name)
            # A field of one kind of job only (compatible APIs', layers') is left out unset.
            unset = item.metadata.get("compat_only") or item.metadata.get("when_set")
            if item.name in leave_out or (unset and value == item.default):
                continue
            if item.name == "dilate_pixels" and self.mode != "erase":
                continue
            definition = PARAMETERS.get(item.name)
            label = definition.label if definition else item.metadata["label"]
            rows.append((label, _for_people(value, definition.none_means if definition else None)))
        return rows

    @property
    def requested_engine(self) -> str | None:
        """The engine asked for: ``engine``, else diffusers when a model, a LoRA or a
        ControlNet is named, else none (the server's default)."""
        named = self.model or self.loras or self.controlnet or self.ip_adapter
        return self.engine or ("diffusers" if named else None)

    @property
    def lora_uses(self) -> list[tuple[str, float]]:
        """Every LoRA the job applies, as (name, weight): ``loras``, then the prompt's
        ``<lora:name:weight>`` tags (a diffusers job's tags were checked when it was queued;
        another engine ignores the prompt, and a malformed tag there is no error)."""
        _, tagged = split_loras(self.prompt, strict=False)
        listed = [(str(lora["name"]), float(lora["weight"])) for lora in self.loras or []]
        return listed + [(use.name, use.weight) for use in tagged]

    @property
    def mask_options(self) -> MaskOptions:
        return MaskOptions(
            mode=self.mask_mode,
            invert=self.invert_mask,
            blur=self.mask_blur,
            grow=self.mask_grow,
            dilate=self.dilate_pixels if self.mode == "erase" else 0,
            exact_size=self.exact_mask_size,
            threshold=self.mask_threshold,
            alpha=self.mask_alpha,
        )

    def for_family(
        self, family: Family, model: str
    ) -> tuple[GenerationParams, list[dict[str, str]]]:
        """These parameters as a job of ``model`` (a ``family`` model) runs them, and the
        warnings for its answer: what the request left to the model (steps, guidance) set
        to the family's defaults; a value outside the family's range refused
        (``InvalidInput`` naming the model); each parameter the family does not use named
        in a warning (the job runs without it)."""
        caps = family.capabilities
        steps = caps.default_steps if self.num_inference_steps is None else self.num_inference_steps
        guidance = caps.default_guidance if self.guidance_scale is None else self.guidance_scale
        unused_guidance = not caps.guidance and guidance != caps.default_guidance
        if not caps.guidance:  # distilled into the steps: the family's own value runs
            guidance = caps.default_guidance
        which = f"the model {echoed(model)} ({family.label})"
        if steps > caps.max_steps:
            raise InvalidInput(
                f"num_inference_steps must be at most {caps.max_steps} for {which}.",
                field="num_inference_steps",
            )
        low, high = caps.guidance_range
        if not low <= guidance <= high:
            raise InvalidInput(
                f"guidance_scale must be between {number(low)} and {number(high)} for {which}.",
                field="guidance_scale",
            )
        if self.speed == "fast" and not caps.fast_tier:
            raise InvalidInput(
                f"{which[0].upper()}{which[1:]} has no fast tier here (speed fast: "
                f"{_fast_tier_families()}); send speed exact.",
                field="speed",
            )
        for name, what, named in (
            ("loras", "LoRAs", self.lora_uses),
            ("controlnet", "ControlNet", self.controlnet),
            ("ip_adapter", "IP-Adapter", self.ip_adapter),
        ):
            if named and not getattr(caps, name):
                raise InvalidInput(
                    f"The model {echoed(model)} ({family.label}) takes no {what} here.", field=name
                )
        warnings = []

        def ignored(field: str, reason: str) -> None:
            warnings.append(
                {"field": field, "message": f"{family.label} {reason}; {field} was not used."}
            )

        if self.negative_prompt.strip() and not caps.negative_prompt:
            ignored("negative_prompt", "has no negative prompt (its guidance is distilled)")
        elif self.negative_prompt.strip() and guidance <= caps.negative_prompt_above:
            ignored(
                "negative_prompt",
                f"uses a negative prompt only with guidance_scale above "
                f"{number(caps.negative_prompt_above)} (classifier-free guidance is off)",
            )
        if unused_guidance:
            ignored("guidance_scale", "has its guidance distilled into its steps")
        background = self.background
        if background == "transparent" and not family.paints_alpha:
            ignored("background", "paints no transparency (its VAE decodes RGB)")
            background = "opaque"
        elif background == "transparent" and self.layers and not caps.regions:
            ignored("background", "paints a job's layers in turn, each over the last one's result")
            background = "opaque"
        if self.soft and not caps.soft_inpainting:
            ignored(
                "soft",
                "regenerates gray mask pixels fully here (soft inpainting: SD 1.5 and SDXL models)",
            )
        if self.scheduler and not caps.schedulers:
            ignored("scheduler", "runs its own flow-matching scheduler only")
        if self.clip_skip != P["clip_skip"].default and not caps.clip_skip:
            ignored("clip_skip", "has no CLIP layers to skip in its conditioning")
        if not caps.prompt_weighting and any(w != 1.0 for _, w in parse_weights(self.prompt)):
            warnings.append(
                {
                    "field": "prompt",
                    "message": f"{family.label} reads the prompt as written: its (word:1.3) "
                    "weights were not applied (the words were).",
                }
            )
        resolved = replace(
            self, num_inference_steps=steps, guidance_scale=guidance, background=background
        )
        return resolved, warnings

    def with_defaults(self) -> GenerationParams:
        """For an engine without a diffusion model (classical, lama): steps and guidance the
        request left open stored as SD's defaults, as they always were."""
        caps = FAMILIES["sd15"].capabilities
        steps, guidance = self.num_inference_steps, self.guidance_scale
        return replace(
            self,
            num_inference_steps=caps.default_steps if steps is None else steps,
            guidance_scale=caps.default_guidance if guidance is None else guidance,
        )

    def to_request(
        self,
        *,
        image: Image.Image,
        mask: Image.Image | None,
        loras: tuple = (),
        reference_images: tuple = (),
        ip_adapter: IpAdapterUse | None = None,
        controlnet: ControlNetUse | None = None,
        eraser: EraserUse | None = None,
        layer_masks: tuple = (),
    ) -> InpaintRequest:
        """The engine request for these parameters (the requested seed; None = random);
        ``loras``, ``controlnet``, ``ip_adapter``, ``eraser``: the additions' files, found by
        the caller on its own disk (``services.additions.planned_uses``); ``layer_masks``: the
        layers' mask files, in ``layers``' order (none: a request without its layers). Steps and
        guidance must be resolved first (``for_family``, ``with_defaults``): a stored job's
        always are."""
        if self.num_inference_steps is None or self.guidance_scale is None:
            raise ValueError("steps and guidance are the model's to choose: resolve them first")
        return InpaintRequest(
            image=image,
            mask=mask,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            denoising_strength=self.denoising_strength,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            seed=self.seed,
            samples=self.samples,
            mask_options=self.mask_options,
            inpaint_area=self.inpaint_area,
            padding=self.padding,
            scheduler=self.scheduler,
            speed=self.speed,
            clip_skip=self.clip_skip,
            loras=loras,
            outpaint=Outpaint(**self.outpaint) if self.outpaint else None,
            resize=Resize(**self.resize) if self.resize else None,
            masked_content=self.masked_content,
            reference_images=reference_images,
            soft=self.soft,
            ip_adapter=ip_adapter,
            controlnet=controlnet,
            eraser=eraser,
            layers=tuple(
                layer_of(layer["name"], layer["prompt"], file, image.size, self.mask_options)
                for layer, file in zip(self.layers or [], layer_masks, strict=True)
            )
            if layer_masks
            else (),
            transparent=self.background == "transparent",
        )


def _fast_tier_families() -> str:
    """The families with a fast tier, for a refusal's message."""
    return ", ".join(f.label for f in FAMILIES.values() if f.capabilities.fast_tier)


def _for_people(value: Any, none_means: str | None) -> str:
    if value is None:
        return none_means or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict) and "resolution" in value:  # split
        return f"{value['layers']} layers, at {value['resolution']} px"
    if isinstance(value, dict) and "mode" in value:  # resize
        return Resize(**value).describe()
    if isinstance(value, dict) and "scale" in value:  # ip_adapter
        return f"{value['name']} (scale {number(value['scale'])})"
    if isinstance(value, dict) and "name" in value:  # controlnet
        return (
            f"{value['name']} (scale {number(value['conditioning_scale'])}, steps "
            f"{number(value['guidance_start'])}-{number(value['guidance_end'])})"
        )
    if isinstance(value, dict):  # outpaint
        return Outpaint(**value).describe()
    if isinstance(value, list) and value and "prompt" in value[0]:  # layers
        return "; ".join(f"{layer['name']}: {layer['prompt'] or '-'}" for layer in value)
    if isinstance(value, list):  # loras
        return ", ".join(f"{lora['name']} ({number(lora['weight'])})" for lora in value) or "-"
    return str(value) if value != "" else "-"
