"""Quantized GGUF transformers (issue 57): a FLUX.1 Fill transformer the test writes as the
community's GGUF files hold it (Q8_0 and Q4_0, what gguf-py can write, and Q4_K, the
K-quant most 4-bit files use, by ``original_layout.quantize_q4_k``), scanned from its header
with its quantization, run through the worker (Q8_0 and Q4_K) with the other parts of the
installed diffusers FLUX.1 Fill beside it, pixels outside the mask the input's. At FLUX.1's
width (diffusers' conversion of Black Forest Labs' keys assumes it): one block of each kind.

The edit families' GGUF transformers too: FLUX.1 Kontext (Black Forest Labs' keys, 64 input
channels), Qwen-Image-Edit (diffusers' keys) and FLUX.2 [klein] (Black Forest Labs' FLUX.2
keys), tiny ones written as Q8_0, are scanned with their family and paired with the installed
folder of that family; the Qwen-Image-Edit Plus one runs a masked edit through the worker."""

from __future__ import annotations

import io
import shutil

import gguf
import numpy as np
import pytest
import torch
from diffusers import (
    Flux2Transformer2DModel,
    FluxTransformer2DModel,
    QwenImageTransformer2DModel,
)
from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask, memory
from inpainting.engine.families import Unsupported
from inpainting.engine.probe import probe, read_gguf
from inpainting.models import Generation, LibraryModel, ModelInstall
from inpainting.services import installs
from inpainting.services.library import library_scan
from inpainting.testing.original_layout import (
    flux_transformer_keys,
    quantize_q4_k,
    write_flux_gguf,
    write_gguf,
)
from tests import fake_hub as hub_module
from tests.helpers import (
    black_box_mask_png,
    image_png,
    post_img2img,
    run_job,
    wait_for_status,
    wait_until_served,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
    pytest.mark.heavy,
]


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory, flux_width_fill):
    root = tmp_path_factory.mktemp("gguf")
    folder = flux_width_fill
    transformer = FluxTransformer2DModel.from_pretrained(folder, subfolder="transformer")
    q8 = write_flux_gguf(transformer, root / "fill-q8.gguf", "Q8_0")
    q4 = write_flux_gguf(transformer, root / "fill-q4.gguf", "Q4_0")
    q4k = write_flux_gguf(transformer, root / "fill-q4k.gguf", "Q4_K")
    return folder, q8, q4, q4k


def assert_only_the_mask_changed(generation: Generation) -> None:
    """The job's output keeps the input's pixels byte for byte outside the effective mask, and
    changed inside it."""
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    untouched = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    assert untouched.any() and np.array_equal(output(generation)[untouched], original[untouched])
    assert not np.array_equal(output(generation)[~untouched], original[~untouched])


def output(generation: Generation) -> np.ndarray:
    with generation.images.get(index=0).file.open("rb") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def test_a_gguf_transformer_is_scanned_and_runs_a_job_with_its_familys_other_parts(
    flux_files, models_dir, api, tmp_path, monkeypatch, fake_hub, installer
):
    """The Q8_0 file installed from a hub repository (by its link: a repository of GGUF files
    holds one transformer in several quantizations, and one is named), the Q4_K file by a plain
    URL, the Q4_0 one copied in; then scanned, listed and run."""
    folder, q8, q4, q4k = flux_files
    shutil.copytree(folder, models_dir / "fill")
    shutil.copy(q4, models_dir / q4.name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(installs.queue, "send_install", lambda install: None)
    fake_hub.repos["tests/fill-gguf"] = hub_module.Repo(
        {q8.name: q8.read_bytes(), q4.name: q4.read_bytes()}
    )
    fake_hub.plain[q4k.name] = q4k.read_bytes()

    def install(source: str) -> ModelInstall:
        created = installs.install_create(user=installer, source=source)
        return installs.install_run(install_id=str(created.pk))

    whole = install("tests/fill-gguf")
    assert whole.status == ModelInstall.Status.FAILED
    assert q8.name in whole.error and f"{fake_hub.url}/tests/fill-gguf/resolve/main/" in whole.error
    for source in (
        f"{fake_hub.url}/tests/fill-gguf/resolve/main/{q8.name}",
        f"{fake_hub.files_url}/files/{q4k.name}",
    ):
        done = install(source)
        assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    assert (models_dir / q8.name).read_bytes() == q8.read_bytes()
    assert (models_dir / q4k.name).read_bytes() == q4k.read_bytes()
    library_scan()
    rows = {m.name: m for m in LibraryModel.objects.checkpoints()}
    for name, quantization in (
        ("fill-q8.gguf", "Q8_0"),
        ("fill-q4.gguf", "Q4_0"),
        ("fill-q4k.gguf", "Q4_K"),
    ):
        row = rows[name]
        assert (row.family, row.inpainting, row.layout) == ("flux", True, "gguf")
        assert row.details["quantization"] == quantization
        held = sum(read_gguf(models_dir / name)[1].values())
        assert row.details["parts"] == {
            "denoiser": held,
            "text_encoders": 0,
            "other": 0,
            "fp8": False,  # already quantized: no fp8 plan
        }
    assert rows["fill-q4.gguf"].size_bytes < rows["fill-q8.gguf"].size_bytes
    assert rows["fill-q4k.gguf"].size_bytes < rows["fill-q8.gguf"].size_bytes
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["fill-q8.gguf"]["quantization"] == "Q8_0"
    assert listed["fill-q8.gguf"]["runnable"] is True  # with fill's text encoders and VAE
    needs = listed["fill-q8.gguf"]["memory_gb"]
    assert "fp8" not in needs  # already quantized
    # It runs with fill's text encoders and VAE: the plans count them.
    theirs = rows["fill"].details["parts"]
    held = rows["fill-q8.gguf"].details["parts"]["denoiser"]
    weights = held + theirs["text_encoders"] + theirs["other"]
    assert needs["gpu"] == round((weights + memory.DEFAULT_HEADROOM) / 1e9, 1)

    for name in ("fill-q8.gguf", "fill-q4k.gguf"):
        wait_until_served(name)
        response = post_img2img(
            api,
            image_png(),
            black_box_mask_png(),
            prompt="a red rose",
            engine="diffusers",
            model=name,
            num_inference_steps=1,
            seed=3,
            wait="false",
        )
        assert response.status_code == 202, response.content
        generation = wait_for_status(response.json()["id"], timeout=240)
        assert generation.status == "succeeded", generation.error
        assert generation.metadata["family"] == "flux"
        assert generation.metadata["memory_plan"] == "cpu"
        assert_only_the_mask_changed(generation)


#: diffusers' FLUX.2 names -> Black Forest Labs' (the inverse of diffusers'
#: ``convert_flux2_transformer_checkpoint_to_diffusers``): outside the blocks, in a double
#: block, in a single block.
_FLUX2_SAME = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
    "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
    "proj_out": "final_layer.linear",
}
_FLUX2_DOUBLE = {
    "attn.norm_q": "img_attn.norm.query_norm",
    "attn.norm_k": "img_attn.norm.key_norm",
    "attn.to_out.0": "img_attn.proj",
    "ff.linear_in": "img_mlp.0",
    "ff.linear_out": "img_mlp.2",
    "attn.norm_added_q": "txt_attn.norm.query_norm",
    "attn.norm_added_k": "txt_attn.norm.key_norm",
    "attn.to_add_out": "txt_attn.proj",
    "ff_context.linear_in": "txt_mlp.0",
    "ff_context.linear_out": "txt_mlp.2",
}
_FLUX2_SINGLE = {
    "attn.to_qkv_mlp_proj": "linear1",
    "attn.to_out": "linear2",
    "attn.norm_q": "norm.query_norm",
    "attn.norm_k": "norm.key_norm",
}


def flux2_transformer_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ``Flux2Transformer2DModel`` state dict in Black Forest Labs' layout: a
    double block's Q, K and V fused per stream, RMS norm weights named ``scale``, the final
    norm's halves as (shift, scale)."""
    out = {}
    for key, tensor in state.items():
        base, kind = key.rsplit(".", 1)
        block, _, rest = base.partition(".")
        index, _, rest = rest.partition(".")
        if base == "norm_out.linear":
            scale, shift = tensor.chunk(2)
            out[f"final_layer.adaLN_modulation.1.{kind}"] = torch.cat([shift, scale])
        elif base in _FLUX2_SAME:
            out[f"{_FLUX2_SAME[base]}.{kind}"] = tensor
        elif block in ("transformer_blocks", "single_transformer_blocks"):
            double = block == "transformer_blocks"
            target = f"{'double' if double else 'single'}_blocks.{index}"
            names = _FLUX2_DOUBLE if double else _FLUX2_SINGLE
            if rest in names:
                name = names[rest]
                out[f"{target}.{name}.{'scale' if 'norm.' in name else kind}"] = tensor
            elif rest == "attn.to_q":  # the fused projections, once per block
                source = f"{block}.{index}.attn."
                out[f"{target}.img_attn.qkv.{kind}"] = torch.cat(
                    [state[f"{source}to_{p}.{kind}"] for p in "qkv"]
                )
                out[f"{target}.txt_attn.qkv.{kind}"] = torch.cat(
                    [state[f"{source}add_{p}_proj.{kind}"] for p in "qkv"]
                )
    return out


@pytest.fixture(scope="module")
def edit_ggufs(tmp_path_factory, kontext_weights, qwen_edit_weights, klein_weights):
    """The tiny Kontext, Qwen-Image-Edit Plus and FLUX.2 [klein] transformers as Q8_0 GGUF
    files in the layouts (and under the names) the community publishes them with."""
    root = tmp_path_factory.mktemp("edit-gguf")
    kontext = FluxTransformer2DModel.from_pretrained(kontext_weights, subfolder="transformer")
    qwen = QwenImageTransformer2DModel.from_pretrained(qwen_edit_weights, subfolder="transformer")
    klein = Flux2Transformer2DModel.from_pretrained(klein_weights, subfolder="transformer")
    return {
        "flux1-kontext-dev-q8.gguf": write_gguf(
            flux_transformer_keys(kontext.state_dict()),
            root / "flux1-kontext-dev-q8.gguf",
            arch="flux",
        ),
        "qwen-image-edit-2509-q8.gguf": write_gguf(
            qwen.state_dict(), root / "qwen-image-edit-2509-q8.gguf", arch="qwen_image"
        ),
        "flux-2-klein-4b-q8.gguf": write_gguf(
            flux2_transformer_keys(klein.state_dict()),
            root / "flux-2-klein-4b-q8.gguf",
            arch="flux",
        ),
    }


def test_the_edit_families_gguf_transformers_are_scanned_with_their_family_and_run(
    edit_ggufs, kontext_weights, qwen_edit_weights, klein_weights, models_dir, api, tmp_path,
    monkeypatch,
):  # fmt: skip
    for name, folder in (
        ("kontext", kontext_weights),
        ("qwen-edit-2509", qwen_edit_weights),
        ("klein", klein_weights),
    ):
        (models_dir / name).symlink_to(folder, target_is_directory=True)
    for name, path in edit_ggufs.items():
        shutil.copy(path, models_dir / name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    report = library_scan()
    assert report.refused == []
    rows = {m.name: m for m in LibraryModel.objects.checkpoints()}
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    for name, family, folder in (
        ("flux1-kontext-dev-q8.gguf", "flux-kontext", "kontext"),
        ("qwen-image-edit-2509-q8.gguf", "qwen-edit-plus", "qwen-edit-2509"),
        ("flux-2-klein-4b-q8.gguf", "flux2-klein", "klein"),
    ):
        row = rows[name]
        assert (row.family, row.layout, rows[folder].family) == (family, "gguf", family)
        assert row.details["quantization"] == "Q8_0"
        assert listed[name]["quantization"] == "Q8_0"
        assert listed[name]["kind"] == "edits"
        # With the other parts (text encoders, VAE) of the installed folder of its family.
        assert listed[name]["runnable"] is True

    wait_until_served("qwen-image-edit-2509-q8.gguf")
    generation = run_job(api, model="qwen-image-edit-2509-q8.gguf", num_inference_steps=1)
    assert generation.metadata["family"] == "qwen-edit-plus"
    assert generation.metadata["edit"] == "masked"
    assert generation.metadata["memory_plan"] == "cpu"
    assert_only_the_mask_changed(generation)


@pytest.mark.parametrize(
    ("source", "name", "reason"),
    [
        ("flux1-kontext-dev-q8.gguf", "flux1-dev-q8.gguf", "does not say Kontext"),
        ("qwen-image-edit-2509-q8.gguf", "qwen-image-q8.gguf", "does not say Edit"),
    ],
)
def test_a_gguf_whose_tensors_are_also_a_model_that_does_not_run_here_is_refused_by_name(
    edit_ggufs, tmp_path, source, name, reason
):
    """FLUX.1 [dev] has Kontext's tensors and Qwen-Image the edit model's: the file's name
    tells them apart, and the refusal says how to name an edit model's file."""
    shutil.copy(edit_ggufs[source], tmp_path / name)
    with pytest.raises(Unsupported, match=reason):
        probe(tmp_path / name)
    assert probe(edit_ggufs[source]).layout == "gguf"


def test_the_q4_k_blocks_the_tests_write_are_read_back_by_gguf_and_diffusers_alike():
    """``quantize_q4_k`` writes what both readers decode to the same values, each within half a
    quantization step of its sub-block from the original (a wrong packing of the 6-bit scales
    or of the nibbles lands far off)."""
    values = np.random.default_rng(57).normal(0, 0.02, (16, 512)).astype(np.float32)
    blocks = quantize_q4_k(values)
    assert blocks.shape == (16, 2 * 144)
    by_gguf = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q4_K)
    parameter = GGUFParameter(torch.from_numpy(blocks), quant_type=gguf.GGMLQuantizationType.Q4_K)
    by_diffusers = dequantize_gguf_tensor(parameter).float().numpy()  # it computes in float16
    assert np.allclose(by_gguf, by_diffusers, atol=1e-4)
    sub_blocks = values.reshape(-1, 32)
    half_step = (sub_blocks.max(axis=1) - np.minimum(sub_blocks.min(axis=1), 0)) / 15 / 2
    error = np.abs(by_gguf - values).reshape(-1, 32).max(axis=1)
    assert np.all(error <= half_step * 1.1 + 1e-4), (error / half_step).max()
