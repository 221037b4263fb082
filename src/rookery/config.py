"""One settings object, read from ROOKERY_* environment variables and a .env file.

With no configuration everything lives under one home folder (./.rookery in the working directory):
the MLflow tracking DB and artifacts, data sets, the prediction history DB and logs. A URL or a path
switches each part elsewhere, e.g. ROOKERY_TRACKING_URI=http://mlflow:5000.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOKERY_", env_file=".env", extra="ignore")

    home: Path = Path(".rookery")
    tracking_uri: str = ""  # default: sqlite:///<home>/mlflow.db
    artifact_root: str = ""  # default: <home>/artifacts (where runs of a SQLite store keep their files)
    datasets_dir: Path | None = None  # default: <home>/datasets
    history_url: str = ""  # default: sqlite:///<home>/history.db (PostgreSQL: postgresql+psycopg://...)
    logs_dir: Path | None = None  # default: <home>/logs
    model_name: str = "rookery"  # registered model name
    model_uri: str = ""  # default: models:/<model_name>@champion
    mlflow_ui_url: str = ""  # shown on the web page's model view when set
    api_key: SecretStr | None = None  # required on the API when set
    workers: int = 0  # processes for per-image work; 0 = one per CPU core
    # Serving (rookery serve)
    max_upload_mb: float = 50.0  # per request; larger uploads get 413
    max_pixels: int = 150_000_000  # per image (decompression bombs: 450 MB decoded); a 5600x3700 photo is 21 Mpx
    registry_poll_seconds: float = 30.0  # how often a server following an alias asks the registry

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.tracking_uri:
            # Inside `mlflow run` (which sets MLFLOW_RUN_ID and MLFLOW_TRACKING_URI for the project's command)
            # follow the project's store. Not otherwise: mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI
            # into this process's environment, so it may name whatever store was used last.
            in_mlflow_run = bool(os.environ.get("MLFLOW_RUN_ID"))
            mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI") if in_mlflow_run else None
            self.tracking_uri = mlflow_uri or f"sqlite:///{self.home / 'mlflow.db'}"
        if not self.artifact_root:
            self.artifact_root = str(self.home / "artifacts")
        if self.datasets_dir is None:
            self.datasets_dir = self.home / "datasets"
        if not self.history_url:
            self.history_url = f"sqlite:///{self.home / 'history.db'}"
        if self.logs_dir is None:
            self.logs_dir = self.home / "logs"
        if not self.model_uri:
            self.model_uri = f"models:/{self.model_name}@champion"
        return self

    @property
    def cache_dir(self) -> Path:
        """Where third-party settings and caches (Ultralytics, Matplotlib) live instead of ~."""
        return self.home / "cache"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call get_settings.cache_clear() after changing the environment."""
    return Settings()
