"""Make the process offline-safe before Ultralytics or MLflow are imported.

Nothing in rookery may download weights, fonts or data at run time. Call `ensure_offline()` before
importing ultralytics or mlflow (the CLI does it first thing; `import_ultralytics()` does it too).
Setting environment variables is the only reliable switch: both libraries read them at import.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rookery.config import Settings, get_settings

_done = False


def ensure_offline(settings: Settings | None = None) -> None:
    global _done
    if _done:
        return
    settings = settings or get_settings()
    cache = settings.cache_dir
    yolo_dir = cache / "ultralytics"
    defaults = {
        "YOLO_OFFLINE": "1",  # no GitHub/hub checks, no analytics
        "YOLO_AUTOINSTALL": "0",  # never pip-install a missing requirement at run time
        "YOLO_VERBOSE": os.environ.get("YOLO_VERBOSE", "False"),
        "YOLO_CONFIG_DIR": str(yolo_dir),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    _install_font(Path(os.environ["YOLO_CONFIG_DIR"]))
    _done = True


def _install_font(yolo_config_dir: Path) -> None:
    """Ultralytics downloads Arial.ttf when it plots unless the file is already in its config dir."""
    target_dir = yolo_config_dir / "Ultralytics"
    targets = [target_dir / "Arial.ttf", target_dir / "Arial.Unicode.ttf"]
    if all(t.exists() for t in targets):
        return
    import matplotlib  # ships DejaVuSans.ttf

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target_dir.mkdir(parents=True, exist_ok=True)
    for t in targets:
        if not t.exists():
            shutil.copyfile(font, t)
