"""Input serializers only parse and range-check; services do the work."""

from __future__ import annotations

import dataclasses
from typing import Any

from rest_framework import serializers

from ..engine import selection, splitting, upscale
from ..engine.layers import MAX_LAYERS
from ..engine.parameters import (
    CONTROLNET_SCALE_RANGE,
    LORA_WEIGHT_RANGE,
    MAX_LORAS,
    MAX_OUTPAINT_SIDE,
    MAX_OUTPAINT_TARGET,
    PARAMETERS,
    check_controlnet,
    check_loras,
    number,
)
from ..engine.schedulers import canonical_name
from ..engine.types import ANCHORS
from ..errors import cut
from ..params import GenerationParams
from ..services.generations import MAX_REFERENCE_IMAGES
from .parsers import json_loads


def requester(serializer: serializers.Serializer) -> Any:
    """The user a request's serializer validates for (its ``context``), or None: a
    compatible API's model names resolve among what the user may run."""
    request = serializer.context.get("request")
    return getattr(request, "user", None)


class ChoiceField(serializers.ChoiceField):
    """DRF's choice field, whose refusal quotes the value sent cut to MAX_ECHOED_NAME (DRF's
    repeats it whole: a 100,000-character value came back twice in the error body)."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            self.fail("invalid_choice", input=cut(data))


#: Other names clients use for the same parameter (A1111 and friends), from the one table.
ALIASES = {alias: p.name for p in PARAMETERS.values() for alias in p.aliases}


def field_for(name: str, **overrides) -> serializers.Field:
    """The DRF field of a parameter of ``engine.parameters.PARAMETERS``; a compatible API
    passes ``default=`` (or a tighter ``min_value=``) where the API it copies differs."""
    p = PARAMETERS[name]
    options: dict[str, Any] = {"help_text": p.describe(), "default": p.default}
    if p.nullable:
        options["allow_null"] = True
    if p.choices is not None:
        field: type[serializers.Field] = ChoiceField
        options["choices"] = list(p.choices)
    elif p.kind is bool:
        field = serializers.BooleanField
    elif p.kind is int:
        field = serializers.IntegerField
        options.update(min_value=p.minimum, max_value=p.maximum)
    elif p.kind is float:
        field = serializers.FloatField
        options.update(min_value=p.minimum, max_value=p.maximum)
    else:
        field = serializers.CharField
        options.update(max_length=p.max_length, allow_blank=True)
    options.update(overrides)
    return field(**options)


def check_count(value, *, most: int, what: str) -> None:
    """The one length rule for every list (or object of named items) a client sends, native
    and compatible: its length is checked before any item is looked at. (Validating each of
    400,000 ControlNet units before counting them cost the web process 21 s of CPU.)"""
    if len(value) > most:
        raise serializers.ValidationError(f"At most {most} {what}; this one has {len(value)}.")


class BoundedListField(serializers.ListField):
    """A list of at most ``max_length`` items, counted before its items are validated."""

    def __init__(self, *, max_length: int, what: str = "items", **kwargs) -> None:
        super().__init__(max_length=max_length, **kwargs)
        self.what = what

    def to_internal_value(self, data):
        if isinstance(data, list | tuple):
            check_count(data, most=self.max_length, what=self.what)
        return super().to_internal_value(data)


class BoundedDictField(serializers.DictField):
    """An object of at most ``max_items`` keys, counted before its values are validated."""

    def __init__(self, *, max_items: int, what: str = "keys", **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_items, self.what = max_items, what

    def to_internal_value(self, data):
        if isinstance(data, dict):
            check_count(data, most=self.max_items, what=self.what)
        return super().to_internal_value(data)


def merge_form_and_params(form: Any) -> dict[str, Any]:
    """Form fields, then the optional JSON ``params`` field on top, aliases resolved."""
    data: dict[str, Any] = {key: form.get(key) for key in form.keys() if key != "params"}
    raw = form.get("params")
    if raw:
        try:
            extra = json_loads(raw)
        except (TypeError, ValueError, RecursionError):
            raise serializers.ValidationError(
                {"params": ["params must be a JSON object."]}
            ) from None
        if not isinstance(extra, dict):
            raise serializers.ValidationError({"params": ["params must be a JSON object."]})
        data.update(extra)
    for alias, name in ALIASES.items():
        if alias in data:
            value = data.pop(alias)
            data.setdefault(name, value)
    return data


class OutpaintSerializer(serializers.Serializer):
    left = serializers.IntegerField(min_value=0, max_value=MAX_OUTPAINT_SIDE, default=0)
    right = serializers.IntegerField(min_value=0, max_value=MAX_OUTPAINT_SIDE, default=0)
    top = serializers.IntegerField(min_value=0, max_value=MAX_OUTPAINT_SIDE, default=0)
    bottom = serializers.IntegerField(min_value=0, max_value=MAX_OUTPAINT_SIDE, default=0)
    width = serializers.IntegerField(min_value=1, max_value=MAX_OUTPAINT_TARGET, required=False)
    height = serializers.IntegerField(min_value=1, max_value=MAX_OUTPAINT_TARGET, required=False)
    anchor = ChoiceField(choices=list(ANCHORS), default="center")

    def validate(self, data):
        sides = any(data[side] for side in ("left", "right", "top", "bottom"))
        target = "width" in data or "height" in data
        if sides and target:
            raise serializers.ValidationError("Give either pixels per side or a target size.")
        if not sides and not target:
            raise serializers.ValidationError("outpaint adds no pixels.")
        return data


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """``data`` checked by ``serializer_class``: its validated data, or a 400 that names each
    field's problem."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _form_json(data, message: str, *, blank: bool = True):
    """A form field's JSON text as its value (a JSON body's value as it is); blank is None
    where ``blank`` allows it, else not JSON (``message``)."""
    if not isinstance(data, str):
        return data
    try:
        return json_loads(data) if data.strip() or not blank else None
    except (ValueError, RecursionError):
        raise serializers.ValidationError(message) from None


class OutpaintField(serializers.JSONField):
    """A JSON object (or a JSON string of one, from a form field) of outpaint settings."""

    def to_internal_value(self, data):
        data = _form_json(data, "outpaint must be a JSON object.", blank=False)
        if data in (None, ""):
            return None
        if not isinstance(data, dict):
            raise serializers.ValidationError("outpaint must be a JSON object.")
        nested = OutpaintSerializer(data=data)
        if not nested.is_valid():
            messages = [
                f"{k}: {v[0]}" if k != "non_field_errors" else str(v[0])
                for k, v in nested.errors.items()
            ]
            raise serializers.ValidationError(messages)
        return dict(nested.validated_data)


class LoraSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    weight = serializers.FloatField(default=1.0)


def first_error(errors, where: str = "") -> str:
    """The first message of a nested serializer's errors, with where it is: ``[1].weight: A
    valid number is required.`` A list serializer's errors are a list or, for items that are
    not objects, a dict by index; an item's are a dict by field or a list of messages."""
    if isinstance(errors, dict):
        items = sorted(errors.items(), key=lambda item: str(item[0]))
    elif isinstance(errors, list) and errors and not isinstance(errors[0], dict | list):
        return f"{where}: {errors[0]}" if where else str(errors[0])
    else:
        items = list(enumerate(errors or []))
    for key, value in items:
        if not value:
            continue
        if isinstance(key, int):
            step = f"{where}[{key}]"
        elif key == "non_field_errors":
            step = where
        else:
            step = f"{where}.{key}" if where else str(key)
        return first_error(value, step)
    return f"{where}: Invalid input." if where else "Invalid input."


class _ItemsField(serializers.JSONField):
    """A JSON list (or a JSON string of one, from a form field) of objects, each read by
    ``item_serializer``: counted (at most ``most``) before any item is looked at; empty is
    None. ``checked`` reads the valid items together."""

    key: str
    shape: str  # the items' fields, for the message: "{name, weight}"
    item_serializer: type[serializers.Serializer]
    most: int
    what: str  # the count's words: "LoRAs per job"

    def checked(self, items: list[dict]) -> list[dict]:
        return items

    def to_internal_value(self, data):
        data = _form_json(data, f"{self.key} must be a JSON list.")
        if data in (None, []):
            return None
        if not isinstance(data, list):
            raise serializers.ValidationError(f"{self.key} must be a JSON list of {self.shape}.")
        check_count(data, most=self.most, what=self.what)
        nested = self.item_serializer(data=data, many=True)
        if not nested.is_valid():
            raise serializers.ValidationError(first_error(nested.errors, self.key))
        return self.checked([dict(item) for item in nested.validated_data])


class LorasField(_ItemsField):
    """``{"name", "weight"}``: LoRAs of the library (GET /api/loras), at most MAX_LORAS,
    weights within the range."""

    key, shape, item_serializer = "loras", "{name, weight}", LoraSerializer
    most, what = MAX_LORAS, "LoRAs per job"

    def checked(self, items: list[dict]) -> list[dict]:
        check_loras([(lora["name"], lora["weight"]) for lora in items])
        return items


class ControlNetSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    conditioning_scale = serializers.FloatField(default=1.0)
    guidance_start = serializers.FloatField(default=0.0)
    guidance_end = serializers.FloatField(default=1.0)


class _AdditionField(serializers.JSONField):
    """A JSON object (or a JSON string of one, from a form field) naming an addition of the
    library (``key`` in a request), its fields read by ``fields_serializer``; ``checked`` checks
    what they mean together."""

    key: str
    fields_serializer: type[serializers.Serializer]

    def checked(self, value: dict) -> dict:
        return value

    def to_internal_value(self, data):
        data = _form_json(data, f"{self.key} must be a JSON object.")
        if data in (None, {}):
            return None
        if not isinstance(data, dict):
            raise serializers.ValidationError(f"{self.key} must be a JSON object with a name.")
        nested = self.fields_serializer(data=data)
        if not nested.is_valid():
            field, messages = next(iter(nested.errors.items()))
            raise serializers.ValidationError(f"{self.key}.{field}: {messages[0]}")
        return self.checked(dict(nested.validated_data))


class ControlNetField(_AdditionField):
    """A ControlNet of the library (GET /api/controlnets) with its conditioning scale and
    guidance window."""

    key, fields_serializer = "controlnet", ControlNetSerializer

    def checked(self, value: dict) -> dict:
        check_controlnet(
            value["conditioning_scale"], value["guidance_start"], value["guidance_end"]
        )
        return value


class IpAdapterSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    scale = serializers.FloatField(default=1.0, min_value=0.0, max_value=1.0)


class IpAdapterField(_AdditionField):
    """An IP-Adapter of the library (GET /api/ip-adapters) and how strongly the job's
    reference picture steers it."""

    key, fields_serializer = "ip_adapter", IpAdapterSerializer


class _ParamsSerializer(serializers.Serializer):
    outpaint = OutpaintField(required=False, allow_null=True, default=None)
    loras = LorasField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            f'LoRAs of the library (GET /api/loras): [{{"name": "ink", "weight": 0.8}}], at '
            f"most {MAX_LORAS}, weights {number(LORA_WEIGHT_RANGE[0])} to "
            f"{number(LORA_WEIGHT_RANGE[1])}; <lora:name:weight> in the prompt adds one too."
        ),
    )
    controlnet = ControlNetField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            'A ControlNet of the library (GET /api/controlnets): {"name": ..., '
            '"conditioning_scale": 1, "guidance_start": 0, "guidance_end": 1}; scale '
            f"{number(CONTROLNET_SCALE_RANGE[0])} to {number(CONTROLNET_SCALE_RANGE[1])}."
        ),
    )

    ip_adapter = IpAdapterField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            'An IP-Adapter of the library (GET /api/ip-adapters): {"name": ..., "scale": 1}, '
            "scale 0 to 1; the request's one reference picture (reference_images) steers the "
            "inpainting model through it."
        ),
    )

    def validate_scheduler(self, value: str | None) -> str | None:
        if not value:
            return None
        return canonical_name(value)

    def validate_model(self, value: str | None) -> str | None:
        return value.strip() or None if value else None  # blank: the default model

    def to_params(self) -> GenerationParams:
        data = dict(self.validated_data)
        if data.get("seed") == -1:
            data["seed"] = None
        known = set(GenerationParams.__dataclass_fields__)
        return GenerationParams(**{k: v for k, v in data.items() if k in known})


#: Every request parameter, one field each, from the table (and so the OpenAPI schema).
GenerationParamsSerializer = type(
    "GenerationParamsSerializer",
    (_ParamsSerializer,),
    {
        "__doc__": "The parameters of a generation (engine.parameters.PARAMETERS).",
        "__module__": __name__,
        **{name: field_for(name) for name in PARAMETERS},
    },
)


class LayerSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    prompt = serializers.CharField(
        max_length=PARAMETERS["prompt"].max_length, required=False, allow_blank=True, default=""
    )
    mask = serializers.CharField(required=False, allow_blank=False)

    def validate_mask(self, value: str) -> str:
        if not value.lstrip()[:5].lower() == "data:":
            raise serializers.ValidationError(
                "A layer's mask is a data URL, or a file of layer_masks (in the layers' order)."
            )
        return value


class LayersField(_ItemsField):
    """Layers, bottom up: ``{"name", "prompt", "mask"}``, at most MAX_LAYERS; a mask is a data
    URL or the next file of ``layer_masks``; a layer without a name is "Layer <n>"."""

    key, shape, item_serializer = "layers", "{name, prompt, mask}", LayerSerializer
    most, what = MAX_LAYERS, "layers a job"

    def checked(self, items: list[dict]) -> list[dict]:
        return [
            {**item, "name": item["name"].strip() or f"Layer {index + 1}"}
            for index, item in enumerate(items)
        ]


class Img2ImgSerializer(GenerationParamsSerializer):
    """The native ``POST /api/img2img`` form (files are read by the service)."""

    image = serializers.FileField(help_text="JPEG, PNG, WebP, AVIF or HEIC / HEIF, at most 10 MB.")
    mask = serializers.FileField(
        required=False,
        help_text="PNG, at most 10 MB. White is kept, black inpainted. Optional with outpaint "
        "and with an edit model (the whole picture is edited by the prompt).",
    )
    reference_images = BoundedListField(
        max_length=MAX_REFERENCE_IMAGES,
        what="reference pictures",
        child=serializers.FileField(),
        required=False,
        help_text="Reference pictures for an edit model (repeat the field), in order: "
        '"put the chair of picture 2 in picture 1". JPEG, PNG or WebP, at most 10 MB each; '
        "GET /api/models says how many a model reads.",
    )
    layers = LayersField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            'Layers, bottom up: [{"name": "scarf", "prompt": "a red scarf", "mask": ...}], at '
            f"most {MAX_LAYERS}; each mask is read as the mask is (mask_mode, invert_mask) and "
            "is a data URL or, where it has none, the next file of layer_masks. Each layer's "
            "prompt paints its region; the area regenerated is their union, or mask."
        ),
    )
    project = serializers.FileField(
        required=False,
        help_text="A DreamLayer project (GET /api/generations/<id>/project/): its picture, mask "
        "and layers, and its parameters where the request sends none of its own.",
    )
    layer_masks = BoundedListField(
        max_length=MAX_LAYERS,
        what="layer masks",
        child=serializers.FileField(),
        required=False,
        help_text="The layers' masks as files (repeat the field), for the layers whose mask is "
        "not a data URL, in their order. PNG, the picture's size.",
    )
    params = serializers.CharField(
        required=False, help_text="Optional JSON object with any of the other fields."
    )
    wait = serializers.BooleanField(
        default=True, help_text="false answers 202 at once; true waits up to the wait limit."
    )
    webhook_url = serializers.URLField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Receives the final JSON as a signed POST when the job ends.",
    )
    max_queue_seconds = serializers.FloatField(
        required=False,
        min_value=1,
        max_value=86400,
        help_text="Fail the job with a message if it is still queued after this many seconds.",
    )

    def validate(self, attrs: dict) -> dict:
        """Each layer with one mask: its data URL, else the next file of ``layer_masks``."""
        layers, files = attrs.get("layers") or [], list(attrs.get("layer_masks") or [])
        wanted = sum("mask" not in layer for layer in layers)
        if wanted != len(files):
            raise serializers.ValidationError(
                {
                    "layer_masks": [
                        f"{wanted} of the layers take their mask from layer_masks; "
                        f"{len(files)} files were sent."
                    ]
                }
            )
        return attrs

    def layer_sources(self) -> list[tuple[str, Any]]:
        """Each layer's mask as sent: ("data", its data URL) or ("file", its upload)."""
        files = iter(self.validated_data.get("layer_masks") or [])
        return [
            ("data", layer["mask"]) if "mask" in layer else ("file", next(files))
            for layer in self.validated_data.get("layers") or []
        ]

    def to_params(self) -> GenerationParams:
        layers = self.validated_data.get("layers")
        return dataclasses.replace(
            super().to_params(),
            layers=[{"name": x["name"], "prompt": x["prompt"]} for x in layers] if layers else None,
        )


class MaskPreviewSerializer(serializers.Serializer):
    """``POST /api/masks/effective``: the effective mask for an image size and mask options."""

    mask = serializers.FileField(
        required=False, help_text="PNG, at most 10 MB. Optional with outpaint."
    )
    width = serializers.IntegerField(min_value=1, max_value=16384)
    height = serializers.IntegerField(min_value=1, max_value=16384)
    mask_mode = field_for("mask_mode")
    invert_mask = field_for("invert_mask")
    mask_blur = field_for("mask_blur")
    mask_grow = field_for("mask_grow")
    outpaint = OutpaintField(
        required=False,
        allow_null=True,
        default=None,
        help_text="As for img2img: the answer is then the outpainted canvas' mask.",
    )

    def validate(self, data):
        if not data.get("mask") and not data.get("outpaint"):
            raise serializers.ValidationError({"mask": ["Send a mask, an outpaint, or both."]})
        return data


class _JsonList(serializers.JSONField):
    """A JSON list given as a JSON value or as a JSON string (from a form field), of at most
    ``max_length`` items."""

    def __init__(self, *, max_length: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def to_internal_value(self, data):
        data = _form_json(data, "Must be JSON.", blank=False)
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a JSON list.")
        check_count(data, most=self.max_length, what="items")
        return data


#: The most points one selection may send (each is one prompt token for SAM).
MAX_POINTS = selection.MAX_POINTS
#: A library file's name as a client gives it: printable, no control character (it may end
#: up in a message or a header).
LIBRARY_NAME = r"^[^\x00-\x1f\x7f]+\Z"


class MaskGenerateSerializer(serializers.Serializer):
    """``POST /api/masks/generate``: a mask from a box, points or a colour without weights
    (grabcut, flood, colour), or from a mask model in a selection worker (sam: points and /
    or a box; text: a phrase, SAM 3; background: the subject, a rembg model)."""

    image = serializers.FileField(help_text="JPEG, PNG, WebP, AVIF or HEIC / HEIF, at most 10 MB.")
    method = ChoiceField(
        choices=["grabcut", "flood", "colour", "sam", "text", "background"], default="grabcut"
    )
    box = _JsonList(
        max_length=4, required=False, help_text="[x0, y0, x1, y1] in image pixels (grabcut, sam)."
    )
    points = _JsonList(
        max_length=MAX_POINTS,
        required=False,
        help_text=f"[[x, y, 1 = add | 0 = subtract], …] (grabcut, sam), at most {MAX_POINTS}.",
    )
    point = _JsonList(max_length=2, required=False, help_text="[x, y] (flood, colour).")
    tolerance = serializers.IntegerField(min_value=0, max_value=255, default=32)
    text = serializers.CharField(
        required=False,
        max_length=selection.MAX_TEXT,
        help_text="What to select, e.g. 'the dog' (text).",
    )
    model = serializers.RegexField(
        LIBRARY_NAME,
        required=False,
        max_length=255,
        help_text="A mask model (GET /api/mask-models) for sam, text or background; default: "
        "the first installed that runs the method.",
    )
    multimask = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="sam: let the model propose three masks and keep its best (default: for a "
        "lone point).",
    )
    threshold = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=selection.SAM3_SCORE_THRESHOLD,
        help_text="text: an instance's (SAM 3) or a box's (GroundingDINO) lowest score.",
    )
    max_detections = serializers.IntegerField(
        min_value=0, max_value=100, default=0, help_text="text: the best N instances (0 = all)."
    )
    text_threshold = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=selection.DINO_TEXT_THRESHOLD,
        help_text="text with SAM 2.1: GroundingDINO's lowest score for the phrase's words.",
    )
    mask_mode = field_for("mask_mode")

    def validate(self, data):
        def numbers(value) -> bool:
            return all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)

        # Whatever the method, what is sent is well formed (the ranges: engine.check_prompt).
        for point in data.get("points", []):
            if not isinstance(point, list) or not 2 <= len(point) <= 3 or not numbers(point):
                raise serializers.ValidationError(
                    {"points": ["Give each point as [x, y] or [x, y, 1 | 0] numbers."]}
                )
        if "box" in data and (len(data["box"]) != 4 or not numbers(data["box"])):
            raise serializers.ValidationError({"box": ["Give [x0, y0, x1, y1]."]})
        if "point" in data and (len(data["point"]) != 2 or not numbers(data["point"])):
            raise serializers.ValidationError({"point": ["Give x and y as numbers."]})
        method = data["method"]
        if method in ("grabcut", "sam") and "box" not in data and "points" not in data:
            raise serializers.ValidationError({"box": [f"{method} needs a box or points."]})
        if method == "text" and not data.get("text", "").strip():
            raise serializers.ValidationError({"text": ["Say what to select."]})
        if method in ("flood", "colour") and "point" not in data:
            raise serializers.ValidationError({"point": [f"{method} needs a point."]})
        return data

    def to_prompt(self) -> selection.Prompt:
        data = self.validated_data
        return selection.Prompt(
            points=selection.points_of(data.get("points", [])),
            box=tuple(float(v) for v in data["box"]) if "box" in data else None,
            multimask=data["multimask"],
            text=data.get("text", ""),
            threshold=data["threshold"],
            max_detections=data["max_detections"],
            text_threshold=data["text_threshold"],
        )


class UpscaleSerializer(serializers.Serializer):
    """``POST /api/upscale``: a picture, or a generation's output, to upscale as a job."""

    image = serializers.FileField(
        required=False, help_text="JPEG, PNG, WebP, AVIF or HEIC / HEIF, at most 10 MB."
    )
    generation = serializers.UUIDField(
        required=False, help_text="Instead of image: one of your generations, by id."
    )
    index = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Which of its outputs (0 first)."
    )
    factor = serializers.FloatField(
        required=False,
        min_value=upscale.FACTOR_RANGE[0],
        max_value=upscale.FACTOR_RANGE[1],
        help_text=f"1 to 4 (default {upscale.DEFAULT_FACTOR:g}), unless width or height is given.",
    )
    width = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=upscale.MAX_SIDE,
        help_text="Target width (alone: the aspect ratio is kept; with height the picture "
        "covers both and its middle is cut out, as AUTOMATIC1111's scale-to with crop).",
    )
    height = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=upscale.MAX_SIDE,
        help_text="Target height (alone: the aspect ratio is kept).",
    )
    upscaler = serializers.CharField(
        required=False,
        max_length=255,
        help_text="lanczos (default), nearest, or an upscaler of GET /api/upscalers.",
    )
    wait = serializers.BooleanField(
        default=True, help_text="false answers 202 at once; true waits up to the wait limit."
    )

    def validate(self, attrs: dict) -> dict:
        if ("image" in attrs) == ("generation" in attrs):
            raise serializers.ValidationError(
                {"image": "Send an image file, or name one of your generations (generation)."}
            )
        if "factor" in attrs and ("width" in attrs or "height" in attrs):
            raise serializers.ValidationError(
                {"factor": "Give a factor, or a width and / or height, not both."}
            )
        if not {"factor", "width", "height"} & attrs.keys():
            attrs["factor"] = upscale.DEFAULT_FACTOR
        return attrs


class SplitSerializer(serializers.Serializer):
    """``POST /api/layers/split``: a picture split into transparent layers, as a job."""

    image = serializers.FileField(help_text="JPEG, PNG, WebP, AVIF or HEIC / HEIF, at most 10 MB.")
    layers = serializers.IntegerField(
        default=4,
        min_value=splitting.MIN_SPLIT_LAYERS,
        max_value=splitting.MAX_SPLIT_LAYERS,
        help_text="How many layers (the background counts as one).",
    )
    prompt = field_for(
        "prompt", help_text="The picture described (optional: the model describes it itself)."
    )
    model = serializers.CharField(
        required=False, max_length=255, help_text="A layer model of GET /api/layer-models."
    )
    seed = field_for("seed")
    num_inference_steps = field_for("num_inference_steps")
    resolution = serializers.ChoiceField(
        choices=list(splitting.RESOLUTIONS),
        default=splitting.RESOLUTIONS[0],
        help_text="The long side the model works at; the layers come back at the picture's size.",
    )
    wait = serializers.BooleanField(
        default=True, help_text="false answers 202 at once; true waits up to the wait limit."
    )
