"""int8 post-training quantisation of a model's ONNX export for OpenVINO, with NNCF, calibrated on real photos.

    python -m rookery.inference.quantize best.onnx photo1.jpg photo2.jpg ... [--tiles 300]
    # -> best.int8.xml + best.int8.bin;  Predictor.from_path("best.int8.xml") runs it on OpenVINO

Calibration takes tiles of the photos the model will count (the same grid as inference, so the activation
ranges are those seen in use), spread evenly over the photos. The detection head's box arithmetic (the DFL
and the anchor/stride Add/Sub/Mul/Div) and its Sigmoid stay in float, as Ultralytics does for its own int8
export: quantising box coordinates moves them by whole pixels, and the scores' sigmoid near the threshold is
where counts change. The result is opt-in: open_backend never picks an .xml by itself. Its count difference
against the float model on the sea lion photos is measured by bench/sliced_inference.py (`--int8`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rookery.errors import InputError, MissingExtraError
from rookery.inference.decode import stack_tiles

DEFAULT_TILES = 300  # NNCF's default subset size; more changed nothing measurable on the sea lion photos


def calibration_tiles(
    photos: Sequence[Path | np.ndarray], tile: int = 640, overlap: int = 64, count: int = DEFAULT_TILES
) -> list[np.ndarray]:
    """Up to `count` (1, tile, tile, 3) uint8 BGR tiles, evenly spaced over the photos' tile grids, padded as
    inference pads a short edge tile."""
    from rookery.data.tiling import tile_grid
    from rookery.imaging import read_image

    if not photos:
        raise InputError("int8 calibration needs at least one photo")
    per_photo = max(1, -(-count // len(photos)))
    out: list[np.ndarray] = []
    for photo in photos:
        image = read_image(Path(photo)) if isinstance(photo, str | Path) else photo
        grid = tile_grid(image.shape[1], image.shape[0], tile, overlap)
        step = max(1, len(grid) // per_photo)
        for t in grid[::step][:per_photo]:
            out.append(stack_tiles([t.crop(image)], (tile, tile)))
    return out[:count]


def quantize_openvino(
    onnx: Path,
    photos: Sequence[Path | np.ndarray],
    out: Path | None = None,
    tile: int = 640,
    overlap: int = 64,
    tiles: int = DEFAULT_TILES,
) -> Path:
    """Write an int8 OpenVINO IR of `onnx` (rookery's raw-tile export) calibrated on tiles of `photos`.

    Returns the .xml path (default `<stem>.int8.xml` beside the ONNX file); its .bin is beside it. The model
    keeps dynamic batch and size and the export's metadata (class names, stride)."""
    try:
        import nncf
        import openvino as ov
    except ImportError as e:
        raise MissingExtraError(getattr(e, "name", None) or "nncf", "openvino") from e
    onnx = Path(onnx)
    if not onnx.is_file():
        raise InputError(f"model {onnx} does not exist")
    out = Path(out) if out is not None else onnx.with_name(f"{onnx.stem}.int8.xml")
    model = ov.Core().read_model(str(onnx))
    data = calibration_tiles(photos, tile, overlap, tiles)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(data),
        preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations: the SiLU outputs are not centred
        subset_size=len(data),
        ignored_scope=_head_scope(model),
    )
    quantized.set_rt_info(str(len(data)), ["rookery", "int8_calibration_tiles"])
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def _head_scope(model: Any) -> Any:
    """The detection head's post-processing (box decoding, sigmoid) kept in float."""
    import nncf

    numbers = [int(m[1]) for op in model.get_ops() if (m := re.match(r"/model\.(\d+)/", op.get_friendly_name()))]
    if not numbers:  # not an Ultralytics graph (a heatmap model): everything may be quantised
        return nncf.IgnoredScope(types=["Sigmoid"], validate=False)
    head = rf"/model\.{max(numbers)}/"
    return nncf.IgnoredScope(
        patterns=[head + r"dfl/.*", head + r"(Add|Sub|Mul|Div)(_\d+)?$"], types=["Sigmoid"], validate=False
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path, help="rookery's ONNX export (rookery.inference.export_onnx)")
    parser.add_argument("photos", type=Path, nargs="+", help="photos like those the model will count")
    parser.add_argument("--out", type=Path, default=None, help="the .xml to write (default <stem>.int8.xml)")
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--tiles", type=int, default=DEFAULT_TILES, help="calibration tiles")
    args = parser.parse_args(argv)
    path = quantize_openvino(args.onnx, args.photos, args.out, args.tile, args.overlap, args.tiles)
    print(path)


if __name__ == "__main__":
    main()
