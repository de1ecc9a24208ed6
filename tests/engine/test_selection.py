"""The mask models' engine side, without the service: probing folders and files, and the
publishers' video layouts of SAM 2.1 and SAM 3 (their image model is what selects)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inpainting.engine import selection
from inpainting.testing.tiny_masks import write_tiny_sam2, write_tiny_sam3


def test_a_sam3_video_folder_selects_as_its_image_detector(tmp_path):
    image_folder = write_tiny_sam3(tmp_path / "sam3")
    video_folder = tmp_path / "sam3-video"
    shutil.copytree(image_folder, video_folder)
    config = json.loads((image_folder / "config.json").read_text())
    (video_folder / "config.json").write_text(
        json.dumps({"model_type": "sam3_video", "detector_config": config})
    )
    assert selection.probe_mask_model(video_folder) == selection.SAM3
    image = Image.new("RGB", (120, 90), (30, 60, 150))
    ImageDraw.Draw(image).ellipse((30, 20, 90, 70), fill=(240, 200, 40))
    prompt = selection.Prompt(text="red cat", threshold=0.25)
    masks = []
    for folder in (image_folder, video_folder):
        selector = selection.load_selector(selection.SAM3, folder)
        masks.append(selector.select(selector.embed(image), prompt))
    assert 0 < masks[0].sum() < masks[0].size
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize(
    "name, content, why",
    [
        ("sam_vit_b.pth", b"x", "pickle"),
        ("model.onnx", b"x", "rembg"),
        ("notes.txt", b"x", "not a mask model"),
    ],
)
def test_files_that_are_not_mask_models_are_refused_with_the_reason(tmp_path, name, content, why):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(selection.Unsupported, match=why):
        selection.probe_mask_model(path)


def test_a_folder_with_only_pickled_weights_is_refused(tmp_path):
    folder = write_tiny_sam2(tmp_path / "sam2")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(selection.Unsupported, match="safetensors"):
        selection.probe_mask_model(folder)
