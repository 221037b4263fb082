"""RandomTranspose: the image and its boxes move together; all 8 symmetries of the square come out."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rookery.training.augment import RandomTranspose, insert_transpose


def _labels(fmt: str = "xyxy", normalized: bool = False) -> dict:
    from ultralytics.utils.instance import Instances

    img = np.zeros((40, 60, 3), np.uint8)
    img[5:15, 30:50] = 255  # a 20 x 10 box at x 30..50, y 5..15
    box = np.array([[30.0, 5.0, 50.0, 15.0]])
    instances = Instances(box.copy(), bbox_format="xyxy", normalized=False)
    if normalized:
        instances.normalize(60, 40)
    instances.convert_bbox(fmt)
    return {"img": img, "instances": instances, "cls": np.zeros((1, 1)), "resized_shape": (40, 60)}


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "ltwh"])
@pytest.mark.parametrize("normalized", [False, True])
def test_the_box_follows_the_transposed_image(fmt: str, normalized: bool) -> None:
    out = RandomTranspose(p=1.0)(_labels(fmt, normalized))
    img, inst = out["img"], out["instances"]
    assert img.shape == (60, 40, 3) and out["resized_shape"] == (60, 40)
    if normalized:
        inst.denormalize(40, 60)
    inst.convert_bbox("xyxy")
    np.testing.assert_allclose(inst.bboxes, [[5.0, 30.0, 15.0, 50.0]])
    ys, xs = np.nonzero(img[..., 0])
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (5, 30, 15, 50)


def test_p_zero_leaves_the_labels_alone() -> None:
    labels = _labels()
    out = RandomTranspose(p=0.0)(labels)
    assert out["img"].shape == (40, 60, 3)
    np.testing.assert_allclose(out["instances"].bboxes, [[30.0, 5.0, 50.0, 15.0]])


def test_with_both_flips_every_symmetry_of_the_square_comes_out() -> None:
    from ultralytics.data.augment import RandomFlip

    random.seed(0)
    seen = set()
    pipeline = [RandomTranspose(0.5), RandomFlip(0.5, "vertical"), RandomFlip(0.5, "horizontal")]
    square = np.arange(9, dtype=np.uint8).reshape(3, 3, 1).repeat(3, axis=2)
    for _ in range(200):
        from ultralytics.utils.instance import Instances

        labels = {"img": square.copy(), "instances": Instances(np.zeros((0, 4)), bbox_format="xywh")}
        for t in pipeline:
            labels = t(labels)
        seen.add(labels["img"][..., 0].tobytes())
    assert len(seen) == 8


def test_it_is_inserted_once_before_the_last_transform() -> None:
    class Compose:
        def __init__(self) -> None:
            self.transforms = ["mosaic", "flip", "format"]

    c = Compose()
    insert_transpose(c)
    insert_transpose(c)
    assert [type(t).__name__ if isinstance(t, RandomTranspose) else t for t in c.transforms] == [
        "mosaic", "flip", "RandomTranspose", "format"]  # fmt: skip
