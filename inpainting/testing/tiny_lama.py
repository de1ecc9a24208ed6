"""Write a tiny ONNX graph with big-lama's signature, for tests that cannot have the real file.

The published export (Carve/LaMa-ONNX ``lama_fp32.onnx``) takes ``image`` float32 [1,3,H,W]
RGB in 0..1 and ``mask`` float32 [1,1,H,W] (1 = fill), and returns ``output`` float32
[1,3,H,W] RGB in 0..255. This graph keeps that contract and really fills: every masked pixel
becomes the per-channel mean of the known pixels, so a test can check that the masked content
is gone, not only that the numbers flow. Two variants: fixed 64x64 inputs (like the 512x512
export) and dynamic height and width (like other exports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The side of the fixed-size variant.
FIXED_SIDE = 64
#: onnxruntime 1.32 runs this opset and IR version; newer ``onnx`` defaults may be ahead of it.
OPSET = 17
IR_VERSION = 10


def build_tiny_lama(side: int | None = FIXED_SIDE, full_scale: float = 255.0) -> onnx.ModelProto:
    """The graph: ``output = 255 * (known + mask * mean)`` with ``known = image * (1 - mask)``
    and ``mean`` the per-channel mean of the known pixels. ``side=None``: dynamic H and W;
    ``full_scale=1``: output in 0..1, as some exports give."""
    height: int | str = side if side is not None else "height"
    width: int | str = side if side is not None else "width"
    inputs = [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width]),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, height, width]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, height, width])]
    initializers = [
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(full_scale, np.float32), "full_scale"),
        # A hole over the whole input leaves no known pixel: divide by this instead of 0.
        numpy_helper.from_array(np.array(1e-6, np.float32), "tiny"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "spatial_axes"),
    ]
    nodes = [
        helper.make_node("Sub", ["one", "mask"], ["keep"]),
        helper.make_node("Mul", ["image", "keep"], ["known"]),
        helper.make_node("ReduceSum", ["known", "spatial_axes"], ["known_sum"], keepdims=1),
        helper.make_node("ReduceSum", ["keep", "spatial_axes"], ["keep_count"], keepdims=1),
        helper.make_node("Max", ["keep_count", "tiny"], ["safe_count"]),
        helper.make_node("Div", ["known_sum", "safe_count"], ["mean"]),
        helper.make_node("Mul", ["mask", "mean"], ["filled"]),
        helper.make_node("Add", ["known", "filled"], ["unit_output"]),
        helper.make_node("Mul", ["unit_output", "full_scale"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "tiny-lama", inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        producer_name="dreamlayer-tests",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write_tiny_lama(path: Path, side: int | None = FIXED_SIDE, full_scale: float = 255.0) -> Path:
    """Save the graph (see ``build_tiny_lama``) to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_tiny_lama(side, full_scale), str(path))
    return path


@dataclass(frozen=True)
class TinyLamaFiles:
    fixed: Path  # FIXED_SIDE x FIXED_SIDE inputs, like the 512x512 published export
    dynamic: Path  # dynamic height and width


def write_tiny_lamas(folder: Path) -> TinyLamaFiles:
    """Both variants in ``folder``."""
    return TinyLamaFiles(
        fixed=write_tiny_lama(folder / f"tiny-lama-{FIXED_SIDE}.onnx", FIXED_SIDE),
        dynamic=write_tiny_lama(folder / "tiny-lama-dynamic.onnx", None),
    )
