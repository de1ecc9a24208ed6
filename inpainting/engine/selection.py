"""Object selection with mask models: SAM 2.1 (points and / or a box), SAM 3 (a phrase selects
every instance), GroundingDINO boxes for a phrase into SAM 2.1, and the rembg background models
(the u2net family and IS-Net, ONNX).

Files are the library's (``MODELS_DIR/masks/``): a SAM folder as its publisher gives it in
the transformers layout (``config.json`` and ``.safetensors`` weights; facebook/sam2.1-hiera-*,
facebook/sam3), or a rembg ``.onnx`` file named as rembg names it (``u2net.onnx``,
``isnet-general-use.onnx`` ...). Pickles are refused; nothing is downloaded.

The expensive part of SAM is its image encoder: ``Selector.embed`` runs it once per image and
the caller keeps the result (``EmbeddingCache``), so each further click costs only the prompt
encoder and the mask decoder. The image processors transformers ships for SAM 2 and SAM 3 need
torchvision, which this deployment does not have, so the few steps they take are written here,
as theirs: resize to the model's square input size (bilinear), scale to 0..1, normalise
(ImageNet's mean and deviation for SAM 2, 0.5 for SAM 3); prompts scaled by the same factors;
the low-resolution mask logits interpolated bilinearly to the image's size and thresholded.

torch, transformers and rembg are imported where a model loads (heavy; a selection worker's
alone), never by the web process, which reads this module's names and rules.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .images import to_rgb
from .types import EngineError, InvalidInput

#: The families of mask model, with what each selects by.
SAM2, SAM3, REMBG, GROUNDING_DINO = "sam2", "sam3", "rembg", "grounding-dino"
FAMILY_LABELS = {
    SAM2: "SAM 2.1",
    SAM3: "SAM 3",
    REMBG: "rembg background model",
    GROUNDING_DINO: "GroundingDINO",
}
#: The families that select by each method, in order of preference. A phrase with SAM 2.1
#: needs a GroundingDINO too (``DETECTOR``: its boxes go into SAM 2.1).
METHOD_FAMILIES = {"sam": (SAM2,), "text": (SAM3, SAM2), "background": (REMBG,)}
DETECTOR = {("text", SAM2): GROUNDING_DINO}
#: The rembg models by file name, with the rembg session that runs each (its preprocessing):
#: ``u2net_custom`` (320 x 320, ImageNet normalisation), ``dis_custom`` (IS-Net, 1024 x 1024).
REMBG_MODELS = {
    "u2net": "u2net_custom",
    "u2netp": "u2net_custom",
    "u2net_human_seg": "u2net_custom",
    "silueta": "u2net_custom",
    "isnet-general-use": "dis_custom",
    "isnet-anime": "dis_custom",
}
_REMBG_HOME_LOCK = threading.Lock()
PICKLES = frozenset({".pt", ".pth", ".ckpt", ".bin", ".pkl"})
#: ``model_type`` of a folder's config.json: the image models, and the video ones their
#: publishers ship (the image model is their part: SAM 2.1's same layout, SAM 3's detector).
_MODEL_TYPES = {
    "sam2": SAM2,
    "sam2_video": SAM2,
    "sam3": SAM3,
    "sam3_video": SAM3,
    "grounding-dino": GROUNDING_DINO,
}
#: The most points one selection may send, the longest phrase, and the most instances a
#: phrase selects (each is a mask at the image's size; GroundingDINO's each a SAM run).
MAX_POINTS = 64
MAX_TEXT = 200
MAX_INSTANCES = 32
#: A background model's soft mask (0..255) selects from this value up.
BACKGROUND_THRESHOLD = 128
#: SAM 3's defaults (its processor's): an instance's score and a mask pixel's probability.
SAM3_SCORE_THRESHOLD = 0.3
SAM3_MASK_THRESHOLD = 0.5
#: GroundingDINO's default word threshold (its processor's and Fooocus's).
DINO_TEXT_THRESHOLD = 0.25
#: GroundingDINO sees images at most this long side (its processor resizes to 800 x 1333).
DINO_MAX_SIDE = 1333


class Unsupported(Exception):
    """A file in the masks folder that is not a mask model this engine runs (the scan says why)."""


def probe_mask_model(path: Path) -> str:
    """The family of the mask model at ``path`` (a SAM folder or a rembg ONNX file), read from
    its configuration or name without loading weights."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLES:
            raise Unsupported("a pickle: only .safetensors and .onnx files are loaded")
        if suffix != ".onnx":
            raise Unsupported("not a mask model (a SAM folder or a rembg .onnx file)")
        if path.stem not in REMBG_MODELS:
            raise Unsupported(
                "an ONNX file whose name is not a rembg model's ("
                + ", ".join(f"{name}.onnx" for name in REMBG_MODELS)
                + ")"
            )
        return REMBG
    config = path / "config.json"
    if not config.is_file():
        raise Unsupported("a folder without config.json (a SAM folder in the transformers layout)")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (ValueError, AttributeError):
        raise Unsupported("config.json is not a JSON object") from None
    if model_type not in _MODEL_TYPES:
        raise Unsupported(f"model_type {model_type!r} is not SAM 2.1, SAM 3 or GroundingDINO")
    if not any(path.glob("*.safetensors")):
        raise Unsupported("no .safetensors weights (pickles are not loaded)")
    return _MODEL_TYPES[model_type]


@dataclass(frozen=True)
class Embedded:
    """What a selector's image encoder made of one image, with the image's size."""

    features: Any
    size: tuple[int, int]  # width, height


@dataclass(frozen=True)
class Prompt:
    """What the user pointed at: points ``(x, y, 1 = add | 0 = subtract)`` and / or a box
    ``(x0, y0, x1, y1)`` in image pixels, or a phrase (SAM 3, GroundingDINO: ``threshold`` is
    an instance's or a box's lowest score, ``text_threshold`` GroundingDINO's for the words)."""

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    multimask: bool | None = None  # None: several candidates for one lone point
    text: str = ""
    threshold: float = SAM3_SCORE_THRESHOLD
    max_detections: int = 0  # 0 = every instance
    text_threshold: float = DINO_TEXT_THRESHOLD


def _instances(prompt: Prompt) -> int:
    """How many instances a phrase selects at most: ``max_detections`` (0 = all), never more
    than MAX_INSTANCES."""
    return min(prompt.max_detections or MAX_INSTANCES, MAX_INSTANCES)


def _device():
    import torch  # noqa: PLC0415

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pixels(image: Image.Image, side: int, mean, std):
    """The image as the SAM processors give it: RGB resized to side x side (bilinear), 0..1,
    normalised, as a float tensor [1, 3, side, side]."""
    import torch  # noqa: PLC0415

    rgb = to_rgb(image).resize((side, side), Image.Resampling.BILINEAR)
    values = (np.asarray(rgb, np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    return torch.from_numpy(values.transpose(2, 0, 1)).unsqueeze(0)


def _to_size(logits, size: tuple[int, int]):
    """Low-resolution logits [N, h, w] brought to the image's size (bilinear, as the
    processors' post-processing does)."""
    import torch.nn.functional as F  # noqa: PLC0415

    width, height = size
    return F.interpolate(
        logits.unsqueeze(0).float(), (height, width), mode="bilinear", align_corners=False
    )[0]


class SamSelector:
    """SAM 2.1 (``Sam2Model``): points and / or a box to one object's mask (of the model's
    candidates, the one it scores best)."""

    reuses_embedding = True

    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, folder: Path) -> None:
        from transformers import Sam2Model  # noqa: PLC0415

        self.device = _device()
        self.model = Sam2Model.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        ).to(self.device)
        self.model.eval()
        self.side = int(self.model.config.prompt_encoder_config.image_size)

    def embed(self, image: Image.Image) -> Embedded:
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            pixels = _pixels(image, self.side, self.mean, self.std).to(self.device)
            features = self.model.get_image_embeddings(pixels)
        return Embedded(features, image.size)

    def select(self, embedded: Embedded, prompt: Prompt) -> np.ndarray:
        import torch  # noqa: PLC0415

        if not prompt.points and prompt.box is None:
            raise InvalidInput("SAM needs at least one point or a box.", field="points")
        width, height = embedded.size
        scale = np.array([self.side / width, self.side / height], np.float32)
        kwargs: dict[str, Any] = {}
        if prompt.points:
            xy = np.array([p[:2] for p in prompt.points], np.float32) * scale
            kwargs["input_points"] = torch.from_numpy(xy)[None, None].to(self.device)
            labels = [int(p[2]) for p in prompt.points]
            kwargs["input_labels"] = torch.tensor([[labels]], dtype=torch.int32, device=self.device)
        if prompt.box is not None:
            box = np.array(prompt.box, np.float32).reshape(2, 2) * scale
            kwargs["input_boxes"] = torch.from_numpy(box.reshape(1, 1, 4)).to(self.device)
        multimask = prompt.multimask
        if multimask is None:
            multimask = len(prompt.points) == 1 and prompt.box is None
        with torch.inference_mode():
            out = self.model(
                image_embeddings=embedded.features, multimask_output=multimask, **kwargs
            )
        masks, scores = out.pred_masks[0, 0], out.iou_scores[0, 0]  # [k, h, w], [k]
        best = int(torch.argmax(scores))  # the candidate the model rates best
        return (_to_size(masks[best : best + 1], embedded.size)[0] > 0.0).cpu().numpy()


class Sam3Selector:
    """SAM 3 (``Sam3Model``): a phrase selects every instance of it (their union); the
    instances are those scored above ``Prompt.threshold``, the best ``max_detections``."""

    reuses_embedding = True
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer, Sam3Config, Sam3Model  # noqa: PLC0415

        self.device = _device()
        raw = json.loads((folder / "config.json").read_text())
        # A SAM 3 video folder holds the image detector as its detector_config (and weights).
        config = Sam3Config.from_dict(raw["detector_config"]) if "detector_config" in raw else None
        self.model = Sam3Model.from_pretrained(
            folder, config=config, local_files_only=True, use_safetensors=True
        ).to(self.device)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.side = int(self.model.config.vision_config.backbone_config.image_size)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    def embed(self, image: Image.Image) -> Embedded:
        import torch  # noqa: PLC0415

        with torch.inference_mode():
            pixels = _pixels(image, self.side, self.mean, self.std).to(self.device)
            features = self.model.get_vision_features(pixel_values=pixels)
        return Embedded(features, image.size)

    def select(self, embedded: Embedded, prompt: Prompt) -> np.ndarray:
        import torch  # noqa: PLC0415

        if not prompt.text.strip():
            raise InvalidInput("SAM 3 selects by a phrase: give text.", field="text")
        tokens = self.tokenizer(
            [prompt.text.strip()],
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            out = self.model(
                vision_embeds=embedded.features,
                input_ids=tokens["input_ids"],
                attention_mask=tokens["attention_mask"],
            )
        scores = out.pred_logits[0].sigmoid()
        if out.presence_logits is not None:
            scores = scores * out.presence_logits[0].sigmoid()
        keep = torch.nonzero(scores > prompt.threshold).flatten()
        keep = keep[torch.argsort(scores[keep], descending=True)][: _instances(prompt)]
        width, height = embedded.size
        selected = np.zeros((height, width), bool)
        for index in keep.tolist():  # one at a time: each is a mask at the image's size
            probability = _to_size(out.pred_masks[0, index : index + 1].sigmoid(), embedded.size)
            selected |= (probability[0] > SAM3_MASK_THRESHOLD).cpu().numpy()
        return selected


class BackgroundSelector:
    """A rembg model (through rembg's own session for that preprocessing, given the file's
    path, so rembg never downloads): the image's subject, its soft mask thresholded. rembg
    opens a given file only under its home folder (``REMBG_HOME``): that is the folder the
    file is in."""

    def __init__(self, path: Path) -> None:
        # rembg imports pymatting, whose numba kernels (alpha matting, never asked for here)
        # compile as it is imported: 45 s on 2 cores the first time. Without the JIT they stay
        # plain Python functions that nothing calls, and the import takes 2 s. Read by numba
        # when it is first imported, which rembg does here.
        os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
        from rembg import new_session  # noqa: PLC0415

        providers = ["CPUExecutionProvider"]
        if _device().type == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        with _REMBG_HOME_LOCK:
            os.environ.pop("U2NET_HOME", None)  # it would take precedence over REMBG_HOME
            os.environ["REMBG_HOME"] = str(path.parent.resolve())
            self.session = new_session(
                REMBG_MODELS[path.stem], model_path=str(path.resolve()), providers=providers
            )

    reuses_embedding = False  # one pass over the whole image; no prompt to vary

    def embed(self, image: Image.Image) -> Embedded:
        return Embedded(image, image.size)

    def select(self, embedded: Embedded, prompt: Prompt) -> np.ndarray:
        soft = self.session.predict(to_rgb(embedded.features))[0]
        return np.asarray(soft.convert("L")) >= BACKGROUND_THRESHOLD


class GroundedSamSelector:
    """A phrase through GroundingDINO (its boxes scored above ``threshold``, the words above
    ``text_threshold``, the best ``max_detections``) into SAM 2.1, one mask per box, their
    union. The SAM embedding is cached like a click's; the detector sees the image each time."""

    reuses_embedding = True

    def __init__(self, sam: SamSelector, folder: Path) -> None:
        from transformers import (  # noqa: PLC0415
            AutoTokenizer,
            GroundingDinoForObjectDetection,
            GroundingDinoProcessor,
        )
        from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (  # noqa: PLC0415
            GroundingDinoImageProcessorPil,  # the PIL one: the default needs torchvision
        )

        self.sam = sam
        self.device = sam.device
        self.model = GroundingDinoForObjectDetection.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        ).to(self.device)
        self.model.eval()
        self.processor = GroundingDinoProcessor(
            image_processor=GroundingDinoImageProcessorPil.from_pretrained(
                folder, local_files_only=True
            ),
            tokenizer=AutoTokenizer.from_pretrained(folder, local_files_only=True),
        )

    def embed(self, image: Image.Image) -> Embedded:
        copy = to_rgb(image)
        if max(copy.size) > DINO_MAX_SIDE:
            copy.thumbnail((DINO_MAX_SIDE, DINO_MAX_SIDE), Image.Resampling.BILINEAR)
        return Embedded((self.sam.embed(image).features, copy), image.size)

    def boxes(self, embedded: Embedded, prompt: Prompt) -> list[tuple[float, ...]]:
        """The detector's boxes for the phrase in image pixels, best first, clipped to it."""
        import torch  # noqa: PLC0415

        text = prompt.text.strip().lower()
        if not text:
            raise InvalidInput("A phrase selects: give text.", field="text")
        if not text.endswith("."):
            text += "."  # GroundingDINO reads a phrase as a sentence
        image = embedded.features[1]
        inputs = self.processor(images=image, text=text, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model(**inputs)
        width, height = embedded.size
        found = self.processor.post_process_grounded_object_detection(
            out,
            inputs["input_ids"],
            threshold=prompt.threshold,
            text_threshold=prompt.text_threshold,
            target_sizes=[(height, width)],
        )[0]
        order = torch.argsort(found["scores"], descending=True)[: _instances(prompt)]
        boxes = []
        for x0, y0, x1, y1 in found["boxes"][order].tolist():
            x0, x1 = max(0.0, x0), min(float(width), x1)
            y0, y1 = max(0.0, y0), min(float(height), y1)
            if x1 > x0 and y1 > y0:
                boxes.append((x0, y0, x1, y1))
        return boxes

    def select(self, embedded: Embedded, prompt: Prompt) -> np.ndarray:
        width, height = embedded.size
        selected = np.zeros((height, width), bool)
        sam_embedded = Embedded(embedded.features[0], embedded.size)
        for box in self.boxes(embedded, prompt):
            selected |= self.sam.select(sam_embedded, Prompt(box=box, multimask=False))
        return selected


def load_selector(family: str, path: Path, detector: Path | None = None):
    """The selector of a mask model (``detector``: the GroundingDINO folder a phrase with
    SAM 2.1 goes through)."""
    try:
        if family == SAM2 and detector is not None:
            return GroundedSamSelector(SamSelector(path), detector)
        if family == SAM2:
            return SamSelector(path)
        if family == SAM3:
            return Sam3Selector(path)
        if family == REMBG:
            return BackgroundSelector(path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(f"The mask model at {path.name} could not be loaded: {exc}") from None
    raise EngineError(f"Unknown mask model family {family!r}.")


@dataclass
class EmbeddingCache:
    """The image encoder's output per (model, image sha256), the most recent ``size`` kept;
    ``encoded`` counts the encoder's runs per model (what a cache hit saves)."""

    size: int = 8
    entries: OrderedDict = field(default_factory=OrderedDict)
    encoded: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, model: str, image_sha256: str, encode) -> tuple[Embedded, bool]:
        """The embedding, and whether it came from the cache (else ``encode()`` made it)."""
        key = (model, image_sha256)
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key], True
        embedded = encode()
        with self.lock:
            self.encoded[model] = self.encoded.get(model, 0) + 1
            self.entries[key] = embedded
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return embedded, False


@dataclass(frozen=True)
class Selected:
    mask: np.ndarray  # bool, H x W
    cached: bool  # the image's embedding was in the cache
    encoded: int  # how many times this process has run this model's image encoder
    seconds: float


def run_selection(
    selector,
    cache: EmbeddingCache,
    *,
    model_key: str,
    image_sha256: str,
    image_loader,
    prompt: Prompt,
) -> Selected:
    """Select with ``selector``: the cached embedding of the image when there is one, else
    the image (``image_loader()``) through the encoder first."""
    start = time.perf_counter()
    if selector.reuses_embedding:
        embedded, cached = cache.get(
            model_key, image_sha256, lambda: selector.embed(image_loader())
        )
    else:
        embedded, cached = selector.embed(image_loader()), False
    mask = selector.select(embedded, prompt)
    return Selected(mask, cached, cache.encoded.get(model_key, 0), time.perf_counter() - start)


def check_prompt(prompt: Prompt, size: tuple[int, int]) -> None:
    """The rules of a prompt, for every surface that sends one: at most MAX_POINTS points,
    each inside the ``size`` (width, height) image with a label 0 or 1; the box inside it and
    not empty; a phrase of at most MAX_TEXT characters."""
    width, height = size
    if len(prompt.points) > MAX_POINTS:
        raise InvalidInput(f"At most {MAX_POINTS} points.", field="points")
    for x, y, label in prompt.points:
        if label not in (0, 1):
            raise InvalidInput("A point's label is 1 (add) or 0 (take away).", field="points")
        if not (0 <= x < width and 0 <= y < height):
            raise InvalidInput(
                f"The point ({x:g}, {y:g}) is outside the {width}x{height} image.",
                field="points",
            )
    if prompt.box is not None:
        if len(prompt.box) != 4:
            raise InvalidInput("Give the box as [x0, y0, x1, y1].", field="box")
        x0, y0, x1, y1 = prompt.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise InvalidInput(
                "The box must be x0, y0, x1, y1 inside the image with x0 < x1 and y0 < y1.",
                field="box",
            )
    if len(prompt.text) > MAX_TEXT:
        raise InvalidInput(f"At most {MAX_TEXT} characters of text.", field="text")


def points_of(values: Sequence[Sequence[float]]) -> tuple[tuple[float, float, float], ...]:
    """``[[x, y], [x, y, 0|1], ...]`` as points with labels (1, add, when none is given); the
    label is checked by ``check_prompt`` (a 0.5 is not a label)."""
    return tuple((float(p[0]), float(p[1]), float(p[2]) if len(p) > 2 else 1.0) for p in values)
