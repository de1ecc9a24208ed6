"""One definition of every parameter (``inpainting.engine.parameters``): the OpenAPI schema,
the CLI's ``--help``, the studio's form and the compatible APIs' fields are all built from it,
and this test reads each of them back and compares."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from inpainting.api.compat.fooocus import FooocusGenerateSerializer
from inpainting.api.compat.modelslab import ModelsLabInpaintSerializer
from inpainting.api.compat.sd_inpaint import SdInpaintSerializer
from inpainting.engine import InvalidInput
from inpainting.engine.families import FAMILIES
from inpainting.engine.parameters import PARAMETERS, check
from inpainting.management.commands.inpaint import Command as InpaintCommand

pytestmark = pytest.mark.django_db


def resolve(schema: dict, node: dict) -> dict:
    """Follow ``$ref`` and ``allOf`` (drf-spectacular puts enums in components)."""
    if "$ref" in node:
        return resolve(schema, schema["components"]["schemas"][node["$ref"].split("/")[-1]])
    for combined in ("allOf", "oneOf"):  # oneOf: a nullable enum (the enum, or null)
        if combined in node:
            merged: dict = {}
            for part in node[combined]:
                resolved = resolve(schema, part)
                enum = merged.get("enum", []) + resolved.get("enum", [])
                merged.update({k: v for k, v in resolved.items() if k != "type"})
                if enum:
                    merged["enum"] = enum
            merged.update({k: v for k, v in node.items() if k != combined})  # its own last
            return merged
    return node


def test_the_openapi_schema_has_each_parameters_range_default_and_choices(api):
    schema = api.get("/api/schema/", headers={"Accept": "application/json"}).json()
    properties = schema["components"]["schemas"]["Img2ImgRequest"]["properties"]
    for name, p in PARAMETERS.items():
        field = resolve(schema, properties[name])
        if p.minimum is not None:
            assert (field["minimum"], field["maximum"]) == (p.minimum, p.maximum), name
        if p.choices is not None:
            assert set(p.choices) <= set(field["enum"]), name
        if p.default is not None:
            assert field["default"] == p.default, name
        assert p.help in field.get("description", ""), name


def test_the_cli_help_shows_each_parameters_range_and_default():
    parser = InpaintCommand().create_parser("manage.py", "inpaint")
    # argparse wraps lines at spaces and after hyphens ("Qwen-" / "Image-Edit").
    text = re.sub(r"\s+", " ", parser.format_help()).replace("- ", "-")
    for name, p in PARAMETERS.items():
        if name == "prompt":
            continue  # a plain --prompt
        assert p.describe().replace("- ", "-") in text, name
        flag = p.cli_flag
        assert flag in text, flag


class FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.inputs[attrs["name"]] = attrs
        if tag == "select":
            self._select = attrs.get("name")
            self.options[self._select] = []
        if tag == "option" and self._select:
            self.options[self._select].append(attrs.get("value"))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def test_the_studio_form_takes_its_limits_and_defaults_from_the_definition(client, user):
    client.force_login(user)
    reader = FormReader()
    reader.feed(client.get("/").content.decode())
    # Steps and guidance: the model's own default and range (the server's SD model here).
    by_model = FAMILIES["sd15"].capabilities.describe()
    number_fields = [p for p in PARAMETERS.values() if p.minimum is not None]
    for p in number_fields:
        attrs = reader.inputs[p.name]
        model = by_model[p.name] if p.name in ("num_inference_steps", "guidance_scale") else {}
        low, high = model.get("minimum", p.minimum), model.get("maximum", p.maximum)
        assert float(attrs["min"]) == low and float(attrs["max"]) == high, p.name
        default = model.get("default", p.default)
        if default is not None:
            assert float(attrs["value"]) == default, p.name
    assert set(reader.options["inpaint_area"]) == set(PARAMETERS["inpaint_area"].choices)
    assert set(reader.options["engine"]) <= set(PARAMETERS["engine"].choices)


def test_the_compatible_apis_use_the_same_ranges_with_their_own_defaults():
    for serializer, name, default in (
        (SdInpaintSerializer(), "num_inference_steps", 50),  # the SD inpainting service's
        # ModelsLab's 31 when neither steps nor num_inference_steps is sent (default_steps)
        (ModelsLabInpaintSerializer(), "steps", None),
        (ModelsLabInpaintSerializer(), "num_inference_steps", None),
        (ModelsLabInpaintSerializer(), "guidance_scale", None),  # the model's (7.5 for SD)
        (FooocusGenerateSerializer(), "image_number", 1),
    ):
        field = serializer.fields[name]
        p = PARAMETERS[{"steps": "num_inference_steps", "image_number": "samples"}.get(name, name)]
        assert (field.min_value, field.max_value) == (p.minimum, p.maximum), name
        assert field.default == default, name
    assert ModelsLabInpaintSerializer.default_steps == 31


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sent", "steps"),
    [({}, 31), ({"num_inference_steps": 7}, 7), ({"steps": 5, "num_inference_steps": 7}, 5)],
)
def test_modelslab_reads_num_inference_steps_as_steps_and_defaults_to_31(sent, steps):
    ml = ModelsLabInpaintSerializer(
        data={"init_image": "x", "mask_image": "y", "prompt": "z", **sent}
    )
    assert ml.is_valid(), ml.errors
    assert ml.to_params().num_inference_steps == steps


def test_the_engine_checks_the_same_ranges():
    for name, p in PARAMETERS.items():
        if p.minimum is not None:
            check(name, p.minimum)
            check(name, p.maximum)
            with pytest.raises(InvalidInput, match=f"{name} must be between") as caught:
                check(name, p.maximum + 1)
            assert caught.value.field == name
        if p.choices is not None:
            with pytest.raises(InvalidInput, match="choose one of"):
                check(name, "no-such-choice")
