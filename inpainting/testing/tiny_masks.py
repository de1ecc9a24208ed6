"""Write tiny, randomly initialised mask models in the library's formats, made offline: a SAM
2.1 folder, a SAM 3 folder and a GroundingDINO folder (transformers layout: ``config.json`` +
``model.safetensors``, SAM 3 with a CLIP tokenizer, GroundingDINO with a BERT word-piece
vocabulary and its image processor's configuration), and an ONNX graph with u2net's
signature. Their masks are noise; the loading, the prompts, the embeddings and the
post-processing are the real ones.

``sam2_tiny_config`` is SAM 2.1 hiera-tiny's real architecture (transformers' defaults are
that checkpoint's): the latency bench runs it with random weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tiny_model import _write_tokenizer

#: u2net's signature as rembg runs it: ``input.1`` [1, 3, 320, 320] in, seven side outputs
#: [1, 1, 320, 320] (the first is the mask rembg reads).
U2NET_SIDE = 320
OPSET = 17
IR_VERSION = 10


def sam2_tiny_config():
    """SAM 2.1 hiera-tiny's architecture (1024 px input, Hiera stages 1/2/7/2 at 96 channels)."""
    from transformers import Sam2Config

    return Sam2Config()


def write_tiny_sam2(folder: str | Path, *, seed: int = 0, config=None) -> Path:
    """A SAM 2.1 folder: by default a toy width of the real layout (1024 px input, the real
    feature-map sizes, so prompts and post-processing are the real ones)."""
    import torch
    from transformers import Sam2Config, Sam2Model

    torch.manual_seed(seed)
    if config is None:
        config = Sam2Config(
            vision_config=dict(
                backbone_config=dict(
                    model_type="sam2_hiera_det_model",
                    hidden_size=8,
                    num_attention_heads=1,
                    blocks_per_stage=[1, 1, 1, 1],
                    embed_dim_per_stage=[8, 16, 32, 64],
                    num_attention_heads_per_stage=[1, 1, 1, 1],
                ),
                backbone_channel_list=[64, 32, 16, 8],
                fpn_hidden_size=32,
            ),
            prompt_encoder_config=dict(hidden_size=32),
            mask_decoder_config=dict(
                hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
            ),
        )
    folder = Path(folder)
    Sam2Model(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def write_tiny_sam3(folder: str | Path, *, seed: int = 0, confident: bool = False) -> Path:
    """A SAM 3 folder: a two-layer ViT at 252 px, a one-layer CLIP text encoder with its
    tokenizer, one-layer DETR encoder and decoder (8 queries) and the mask decoder.
    ``confident``: its presence head and its query scores say "found" for any phrase (the
    random model's scores are about 0.25, under SAM 3's threshold), so a phrase always selects
    the union of its queries' random masks."""
    import torch
    from transformers import Sam3Config, Sam3Model

    torch.manual_seed(seed)
    width, max_length = 32, 32
    config = Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=252,
                patch_size=14,
                window_size=6,
                global_attn_indexes=[1],
                pretrain_image_size=84,
            ),
            fpn_hidden_size=width,
        ),
        text_config=dict(
            model_type="clip_text_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=1000,
            max_position_embeddings=max_length,
            projection_dim=width,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        geometry_encoder_config=dict(
            hidden_size=width, num_layers=1, num_attention_heads=2, intermediate_size=64
        ),
        detr_encoder_config=dict(
            hidden_size=width, num_layers=1, num_attention_heads=2, intermediate_size=64
        ),
        detr_decoder_config=dict(
            hidden_size=width,
            num_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_queries=8,
        ),
        mask_decoder_config=dict(hidden_size=width, num_attention_heads=2),
    )
    folder = Path(folder)
    model = Sam3Model(config).eval()
    if confident:
        with torch.no_grad():
            presence = model.detr_decoder.presence_head.layer3
            presence.weight.zero_()
            presence.bias.fill_(10.0)  # sigmoid: 1
            scoring = model.dot_product_scoring
            for projection in (scoring.text_proj, scoring.query_proj):
                projection.weight.zero_()
                projection.bias.fill_(1.5)  # every query . the text: 72 / sqrt(32), clamped
    model.save_pretrained(folder, safe_serialization=True)
    _write_tokenizer(folder, max_length)
    return folder


#: Words of the tiny GroundingDINO vocabulary (others fall back to single letters).
_DINO_WORDS = ["a", "the", "red", "cat", "dog", "ball", "circle", "person", "car", "and"]


def write_tiny_grounding_dino(folder: str | Path, *, seed: int = 0) -> Path:
    """A GroundingDINO folder: a one-layer-per-stage Swin backbone, a one-layer BERT with a
    word-piece vocabulary written here, 8 queries, two decoder layers (its box heads are tied
    across layers), and the image processor's configuration (800 x 1333, as published)."""
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    torch.manual_seed(seed)
    width = 32
    config = GroundingDinoConfig(
        backbone_config=dict(
            model_type="swin",
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=7,
            out_indices=[2, 3, 4],
        ),
        text_config=dict(
            model_type="bert",
            hidden_size=width,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=64,
        ),
        num_queries=8,
        encoder_layers=1,
        decoder_layers=2,
        d_model=width,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        max_text_len=32,
    )
    folder = Path(folder)
    GroundingDinoForObjectDetection(config).eval().save_pretrained(folder, safe_serialization=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + _DINO_WORDS
    vocab += [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in vocab]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.txt").write_text("\n".join(vocab[:64]) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    GroundingDinoImageProcessorPil().save_pretrained(folder)
    return folder


def write_tiny_u2net(path: str | Path, *, seed: int = 0, side: int = U2NET_SIDE) -> Path:
    """An ONNX graph with u2net's signature: a 3x3 convolution to one channel and a sigmoid,
    given as all seven side outputs (``side`` 1024: IS-Net's input size)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    shape = [1, 1, side, side]
    outputs = [f"d{i}" for i in range(7)]
    nodes = [
        helper.make_node("Conv", ["input.1", "weight", "bias"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["d0"]),
    ] + [helper.make_node("Identity", ["d0"], [name]) for name in outputs[1:]]
    graph = helper.make_graph(
        nodes,
        "tiny_u2net",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in outputs],
        [
            numpy_helper.from_array(rng.normal(0, 1, (1, 3, 3, 3)).astype(np.float32), "weight"),
            numpy_helper.from_array(np.zeros(1, np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path
