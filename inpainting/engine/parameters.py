"""The one definition of every request parameter: name, type, range, default, choices, help.

Everything else is built from this table: ``GenerationParams`` (the stored job), the native
serializer and so the OpenAPI schema, the compatible APIs' fields (with their own defaults
where the API they copy has others), the CLI's flags, the studio's form limits, and the
engine's own range checks. Adding a parameter is one entry here plus its use.

Plain Python (the engine imports no Django).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .engines import ENGINES as ENGINE_RECORDS
from .families import FAMILIES
from .types import MAX_SEED, InvalidInput

#: Steps and guidance are each model's to choose: the ranges below are the union of the
#: families' (each job is held to its own model's by ``params.GenerationParams.for_family``).
_CAPABILITIES = [f.capabilities for f in FAMILIES.values()]


def _per_family(attribute: str) -> str:
    """``FLUX.1 Fill 50, Stable Diffusion 3.5 40, ...``: a capability of every family."""
    return ", ".join(
        f"{f.label} {number(getattr(f.capabilities, attribute))}" for f in FAMILIES.values()
    )


MASK_MODES = ("black_inpaints", "white_inpaints")
INPAINT_AREAS = ("auto", "masked", "whole")
#: ``exact``: every step computed; ``fast``: the fast tier (``families.base.Capabilities``).
SPEEDS = ("exact", "fast")
#: ``opaque``: an RGB result; ``transparent``: the alpha the model paints kept (an RGBA PNG),
#: where its VAE paints one (``Family.paints_alpha``).
BACKGROUNDS = ("opaque", "transparent")
#: ``inpaint``: the mask repainted (from the prompt, with a diffusion model); ``erase``: what
#: the mask covers removed by the best remover here, its mask grown by ``dilate_pixels``
#: first (an erase adapter: ``services.plan.erase_plan``; else ``registry.EngineConfig
#: .choose``), never a new object painted.
MODES = ("inpaint", "erase")
ENGINES = tuple(ENGINE_RECORDS)
#: The engines that fill the mask from the picture around it: no words, no sampling.
FILL_ENGINES = tuple(name for name, engine in ENGINE_RECORDS.items() if not engine.diffusion)
#: What a fill engine does not use: the words, the sampling, soft inpainting and the
#: diffusion model's settings. A request that sends them is told so (``warnings``); its job
#: keeps the request as sent and every JSON answer echoes it (an answer's shape does not
#: depend on the engine); its pages and the admin name none of them; the studio disables them.
FILL_ENGINE_UNUSED = (
    "prompt",
    "negative_prompt",
    "denoising_strength",
    "num_inference_steps",
    "guidance_scale",
    "clip_skip",
    "scheduler",
    "soft",
    "speed",
    "model",
    "background",
)
#: Outpainting: pixels added on one side, and the longest side of a target size.
MAX_OUTPAINT_SIDE = 2048
MAX_OUTPAINT_TARGET = 8192
#: LoRAs per job (``loras`` and ``<lora:name:weight>`` tags together), and their weights.
MAX_LORAS = 5
LORA_WEIGHT_RANGE = (-2.0, 2.0)


#: A ControlNet's conditioning scale, and the part of the denoising it guides (fractions).
CONTROLNET_SCALE_RANGE = (0.0, 2.0)


def check_controlnet(scale: float, start: float, end: float, *, field: str = "controlnet") -> None:
    """The scale within CONTROLNET_SCALE_RANGE; 0 <= guidance_start < guidance_end <= 1."""
    low, high = CONTROLNET_SCALE_RANGE
    if not low <= scale <= high:
        raise InvalidInput(
            f"controlnet.conditioning_scale must be between {number(low)} and {number(high)}.",
            field=field,
        )
    if not 0.0 <= start < end <= 1.0:
        raise InvalidInput(
            "controlnet.guidance_start and guidance_end are fractions of the denoising: "
            "0 <= guidance_start < guidance_end <= 1.",
            field=field,
        )


def check_loras(uses: list[tuple[str, float]], *, field: str = "loras") -> None:
    """At most MAX_LORAS, each weight within LORA_WEIGHT_RANGE (a LoRA named twice is found
    where names are matched to the library: ``services.additions.library_loras_planned``)."""
    if len(uses) > MAX_LORAS:
        raise InvalidInput(
            f"At most {MAX_LORAS} LoRAs per job; this one names {len(uses)}.", field=field
        )
    low, high = LORA_WEIGHT_RANGE
    for name, weight in uses:
        if not low <= weight <= high:
            raise InvalidInput(
                f"The weight of the LoRA {name!r} must be between {number(low)} and "
                f"{number(high)}; it is {number(weight)}.",
                field=field,
            )


def number(value: float) -> str:
    """1, 0.75, 4294967295: as a person writes them (no exponent, no trailing .0)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: type  # int, float, str or bool
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False  # None is a value (random seed, the model's scheduler, ...)
    max_length: int | None = None
    aliases: tuple[str, ...] = ()  # other names clients send (A1111 and friends)
    flag: str | None = None  # the CLI's flag, when it is not --<name>
    #: What people read, e.g. in the history detail page's table.
    label: str = field(kw_only=True)
    #: What None means, in words ("random" for the seed).
    none_means: str | None = field(default=None, kw_only=True)

    @property
    def cli_flag(self) -> str:
        return "--" + (self.flag or self.name).replace("_", "-")

    def describe(self) -> str:
        """The help text with the range (or choices) and the default, as the CLI shows it."""
        if self.choices:
            limits = " | ".join(self.choices)
        elif self.minimum is not None:
            limits = f"{number(self.minimum)}..{number(self.maximum)}"
        else:
            limits = ""
        if self.default is None:
            default = "none"
        elif self.default == "":
            default = '""'
        else:
            default = str(self.default).lower()
        return f"{self.help} ({limits + ', ' if limits else ''}default {default})"

    def check(self, value: Any) -> None:
        """The engine's range check (``InvalidInput`` naming this parameter)."""
        if value is None and self.nullable:
            return
        if self.choices is not None and value not in self.choices:
            raise InvalidInput(
                f"Unknown {self.name} {value!r}; choose one of {', '.join(self.choices)}.",
                field=self.name,
            )
        if self.minimum is not None and not self.minimum <= value <= self.maximum:
            raise InvalidInput(
                f"{self.name} must be between {number(self.minimum)} and {number(self.maximum)}.",
                field=self.name,
            )


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(
            "prompt",
            str,
            "",
            "what to paint; required for diffusers; (word:1.3), (word), [word] weigh words",
            max_length=2000,
            label="Prompt",
        ),
        Parameter(
            "negative_prompt", str, "", "what to avoid", max_length=2000, label="Negative prompt"
        ),
        Parameter(
            "denoising_strength",
            float,
            # 1: the masked area is painted afresh, as inpainting models are trained to (and
            # diffusers' own default); under 1 the object under the mask shows through.
            1.0,
            "how far the masked area may move from the input",
            minimum=0.0,
            maximum=1.0,
            label="Denoising strength",
        ),
        Parameter(
            "num_inference_steps",
            int,
            None,
            f"denoising steps; none = the model's default ({_per_family('default_steps')}), "
            "at most its maximum (GET /api/models)",
            minimum=1,
            maximum=max(c.max_steps for c in _CAPABILITIES),
            nullable=True,
            aliases=("steps",),
            flag="steps",
            label="Steps",
            none_means="the model's default",
        ),
        Parameter(
            "guidance_scale",
            float,
            None,
            "how closely to follow the prompt; none = the model's default "
            f"({_per_family('default_guidance')}), within its range (GET /api/models)",
            minimum=min(c.guidance_range[0] for c in _CAPABILITIES),
            maximum=max(c.guidance_range[1] for c in _CAPABILITIES),
            nullable=True,
            aliases=("cfg_scale",),
            label="Guidance scale",
            none_means="the model's default",
        ),
        Parameter(
            "seed",
            int,
            None,
            "a reproducible result; -1 or none = random (the seed used is always returned)",
            minimum=-1,
            maximum=MAX_SEED,
            nullable=True,
            label="Seed",
            none_means="random",
        ),
        Parameter(
            "samples",
            int,
            1,
            "images per request",
            minimum=1,
            maximum=4,
            aliases=("batch_size",),
            label="Samples",
        ),
        Parameter(
            "mask_mode",
            str,
            "black_inpaints",
            "which mask colour is regenerated",
            choices=MASK_MODES,
            label="Mask mode",
        ),
        Parameter("invert_mask", bool, False, "swap kept and regenerated", label="Invert mask"),
        Parameter(
            "soft",
            bool,
            False,
            "soft inpainting (differential diffusion): a gray mask pixel is regenerated in part, "
            "from the step its value says; SD 1.5 and SDXL models",
            label="Soft inpainting",
        ),
        Parameter(
            "mask_blur",
            int,
            4,
            "feather width in pixels",
            minimum=0,
            maximum=64,
            label="Mask blur (px)",
        ),
        Parameter(
            "mask_grow",
            int,
            0,
            "grow (or shrink, negative) the mask by pixels",
            -64,
            64,
            label="Mask grow (px)",
        ),
        Parameter(
            "inpaint_area",
            str,
            "auto",
            "masked: only the mask's box (plus padding) at working size",
            choices=INPAINT_AREAS,
            label="Inpaint area",
        ),
        Parameter(
            "padding",
            int,
            32,
            "pixels around the mask's box (only-masked)",
            0,
            256,
            label="Padding (px)",
        ),
        Parameter(
            "clip_skip",
            int,
            1,
            "text encoder layers to skip from the end, as AUTOMATIC1111 counts (1 = none)",
            minimum=1,
            maximum=4,
            label="Clip skip",
        ),
        Parameter(
            "scheduler",
            str,
            None,
            "a name from GET /api/schedulers (any case); none = the model's own",
            nullable=True,
            label="Scheduler",
            none_means="the model's own",
        ),
        Parameter(
            "mode",
            str,
            "inpaint",
            "erase: remove what the mask covers with the best remover here (an erase adapter "
            "of the library on its model, else LaMa where its file is, else the classical "
            "engine), no prompt, the mask grown by dilate_pixels first so shadows and edges go "
            "too",
            choices=MODES,
            label="Mode",
        ),
        Parameter(
            "dilate_pixels",
            int,
            10,
            "erase mode: grow the mask by this many pixels first (its shadow, its edges)",
            0,
            100,
            label="Erase dilation (px)",
        ),
        Parameter(
            "speed",
            str,
            "exact",
            "fast: the fast tier, a step reused where the denoiser's first block barely changes "
            "(FirstBlockCache), faster and a little off the exact picture; the transformer "
            "families (FLUX, FLUX.2 [klein], Kontext, Qwen-Image-Edit)",
            choices=SPEEDS,
            label="Speed",
        ),
        Parameter(
            "background",
            str,
            "opaque",
            "transparent: keep the transparency the model paints (an RGBA PNG: its alpha where "
            "the model made the picture see-through), as OpenAI's background; a model whose VAE "
            "paints alpha (Qwen-Image-2.1), else the answer's warnings say it was not used",
            choices=BACKGROUNDS,
            label="Background",
        ),
        Parameter(
            "model",
            str,
            None,
            "a diffusion model of the library (GET /api/models); none = the default",
            nullable=True,
            max_length=255,
            label="Model",
            none_means="the default model",
        ),
        Parameter(
            "engine",
            str,
            None,
            "none = the server's default (auto: lama when installed and there is no prompt)",
            choices=ENGINES,
            nullable=True,
            label="Engine",
            none_means="the server's default",
        ),
    )
}


def check(name: str, value: Any) -> None:
    PARAMETERS[name].check(value)
