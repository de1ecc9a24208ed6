"""The validated parameters of a generation, stored as one JSON document on the row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from PIL import Image

from .engine import InpaintRequest, MaskOptions, Outpaint


@dataclass(frozen=True)
class GenerationParams:
    prompt: str = ""
    negative_prompt: str = ""
    denoising_strength: float = 0.75
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    seed: int | None = None  # as requested; None = random
    samples: int = 1
    mask_mode: str = "black_inpaints"
    invert_mask: bool = False
    mask_blur: int = 4
    mask_grow: int = 0
    exact_mask_size: bool = False
    mask_threshold: int | None = None
    inpaint_area: str = "auto"
    padding: int = 32
    outpaint: dict | None = (
        None  # {"left", "right", "top", "bottom"} or {"width", "height", "anchor"}
    )
    scheduler: str | None = None  # None = the model's own
    engine: str | None = None  # as requested; None = server default

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def mask_options(self) -> MaskOptions:
        return MaskOptions(
            mode=self.mask_mode,
            invert=self.invert_mask,
            blur=self.mask_blur,
            grow=self.mask_grow,
            exact_size=self.exact_mask_size,
            threshold=self.mask_threshold,
        )

    def to_request(self, *, image: Image.Image, mask: Image.Image | None) -> InpaintRequest:
        """The engine request for these parameters (the requested seed; None = random)."""
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
            outpaint=Outpaint(**self.outpaint) if self.outpaint else None,
        )
