"""Aerial-photo augmentation that Ultralytics lacks: 90° rotations, as a random transpose.

Ultralytics flips both ways (fliplr, flipud) but has no 90° rotation, and `degrees` rotates by any angle
(blurring, and growing boxes at their corners). A transpose (x <-> y) with probability 1/2, combined with
both flips at 1/2, gives each of the 8 symmetries of the square (rotations by 0/90/180/270 and their
mirror images) with probability 1/8: survey photos have no "up", so all 8 are equally plausible.

    model.add_callback("on_pretrain_routine_end", add_transpose)   # before model.train(...)

The callback puts RandomTranspose into the training set's transforms (before Ultralytics' final Format),
also into the transforms rebuilt when mosaic closes, and restarts the loader's workers, which hold a
copy of the data set from before the change. Ultralytics does not carry callbacks into its DDP
subprocesses (device "0,1"): there the training runs without it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np


class RandomTranspose:
    """Swap the image's axes and every box's x and y with probability `p` (an Ultralytics transform)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be between 0 and 1, got {p}")
        self.p = p

    def __call__(self, labels: dict[str, Any]) -> dict[str, Any]:
        if random.random() >= self.p:
            return labels
        labels["img"] = np.ascontiguousarray(np.swapaxes(labels["img"], 0, 1))
        instances = labels.get("instances")
        if instances is not None:
            # x and y swap in every box format (xyxy, xywh, ltwh), normalised or not: columns 0<->1, 2<->3
            boxes = instances.bboxes
            boxes[:] = boxes[:, [1, 0, 3, 2]]
            if instances.segments is not None and instances.segments.size:
                instances.segments[:] = instances.segments[..., ::-1]
            if instances.keypoints is not None:
                instances.keypoints[..., :2] = instances.keypoints[..., 1::-1].copy()
        if "resized_shape" in labels:
            labels["resized_shape"] = tuple(labels["resized_shape"])[::-1]
        return labels


def insert_transpose(compose: Any, p: float = 0.5) -> None:
    """Put a RandomTranspose into an Ultralytics Compose, before its last transform (Format); once."""
    transforms = compose.transforms
    if any(isinstance(t, RandomTranspose) for t in transforms):
        return
    transforms.insert(max(len(transforms) - 1, 0), RandomTranspose(p))


def add_transpose(trainer: Any, p: float = 0.5) -> None:
    """Ultralytics callback (on_pretrain_routine_end): random transposes in the training set from now on."""
    loader = getattr(trainer, "train_loader", None)
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "transforms"):
        return
    build = dataset.build_transforms

    def build_with_transpose(hyp: Any = None) -> Any:  # mosaic closing rebuilds the transforms
        compose = build(hyp)
        insert_transpose(compose, p)
        return compose

    dataset.build_transforms = build_with_transpose
    insert_transpose(dataset.transforms, p)
    reset = getattr(loader, "reset", None)
    if reset is not None:
        reset()  # the workers were started with the old transforms
