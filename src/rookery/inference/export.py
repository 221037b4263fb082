"""Export an Ultralytics checkpoint to the ONNX graph rookery's CPU backends (ONNX Runtime, OpenVINO) run.

Moved out of backends.py to keep both modules short; `rookery.inference.backends.export_onnx` still works.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from rookery.errors import InputError


def export_onnx(weights: Path, imgsz: int = 640, dynamic: bool = True, raw_input: bool = True) -> Path:
    """Export an Ultralytics .pt checkpoint to ONNX next to it (dynamic batch and size by default).

    With `raw_input` (the default) the graph takes the tiles as rookery holds them, uint8 (N, H, W, 3) BGR,
    and does the channel flip, transpose and scaling itself: ONNX Runtime runs those on its own threads,
    fused with the first convolution's input, instead of numpy building a float copy 4x the size.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise InputError(f"model weights {weights} do not exist")
    from rookery.inference.backends import import_torch_stack

    import_torch_stack()
    from ultralytics.models import YOLO

    try:
        with warnings.catch_warnings():  # torch's notice about its legacy exporter, which Ultralytics uses
            warnings.simplefilter("ignore", DeprecationWarning)
            # simplify=False: onnxslim took 2.3 of the export's 3 s at the end of every training, and ONNX Runtime
            # and OpenVINO fold the same constants when they load the graph: measured on a yolov8n, the slimmed
            # and the plain export give identical outputs at the same speed on both.
            out = YOLO(str(weights)).export(format="onnx", dynamic=dynamic, simplify=False, imgsz=imgsz, verbose=False)
    except Exception as e:  # Ultralytics raises plain exceptions of many kinds for unusable checkpoints
        first_line = next(iter(str(e).splitlines()), "")
        raise InputError(f"could not export {weights.name} to ONNX ({type(e).__name__}: {first_line})") from e
    if raw_input:
        _take_raw_tiles(Path(out))
    return Path(out)


def _take_raw_tiles(path: Path) -> None:
    """Rewrite an Ultralytics ONNX export in place so that it takes uint8 NHWC BGR tiles."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    old = graph.input[0]
    dims = [d.dim_param or d.dim_value for d in old.type.tensor_type.shape.dim]  # N, 3, H, W
    raw = helper.make_tensor_value_info("tiles", TensorProto.UINT8, [dims[0], dims[2], dims[3], 3])
    consts = [
        helper.make_tensor("bgr_to_rgb", TensorProto.INT64, [3], [2, 1, 0]),
        helper.make_tensor("inv_255", TensorProto.FLOAT, [], [1.0 / 255.0]),
    ]
    nodes = [
        helper.make_node("Gather", ["tiles", "bgr_to_rgb"], ["tiles_rgb"], axis=3),
        helper.make_node("Cast", ["tiles_rgb"], ["tiles_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["tiles_float"], ["tiles_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["tiles_nchw", "inv_255"], [old.name]),
    ]
    graph.initializer.extend(consts)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.input.remove(old)
    graph.input.insert(0, raw)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
