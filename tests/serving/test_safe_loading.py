"""Model checkpoints are read with torch.load(weights_only=True) and an allow-list of network classes (issue 16):
whoever can write to the registry cannot run code on the server; Ultralytics' and rookery's own checkpoints load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rookery.errors import InputError
from rookery.inference.backends import TorchBackend, safe_torch_load


class _Payload:
    """Runs a command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_runs_code_when_unpickled_is_refused(tmp_path: Path):
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "best.pt"
    torch.save({"model": _Payload(marker), "family": "heatmap"}, str(path))
    with pytest.raises(InputError, match=r"system.*refused"):
        TorchBackend.from_checkpoint(path)
    assert not marker.exists()


def test_a_function_under_an_allowed_package_is_not_a_module_and_is_refused(tmp_path: Path):
    import torch

    path = tmp_path / "best.pt"
    torch.save({"model": torch.nn.modules.module.register_module_forward_hook}, str(path))
    with pytest.raises(InputError, match="register_module_forward_hook"):
        safe_torch_load(path)


def test_rookery_heatmap_and_ultralytics_checkpoints_still_load(tmp_path: Path, trained_model):
    import torch

    from rookery.models.heatmap import HeatmapNet
    from rookery.training.heatmap import save_checkpoint

    path = save_checkpoint(HeatmapNet(["a", "b"], [40.0, 20.0]), tmp_path / "heatmap.pt")
    loaded = safe_torch_load(path)
    assert isinstance(loaded["model"], HeatmapNet) and loaded["family"] == "heatmap"
    assert TorchBackend.from_checkpoint(path).class_names == ("a", "b")
    yolo = TorchBackend.from_checkpoint(trained_model.best)
    assert len(yolo.class_names) == 2 and isinstance(yolo.module, torch.nn.Module)
