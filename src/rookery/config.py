"""One settings object, read from ROOKERY_* environment variables and a .env file.

With no configuration everything lives under one home folder (./.rookery in the working directory):
the MLflow tracking DB and artifacts, data sets, the prediction history DB and logs. A URL or a path
switches each part elsewhere, e.g. ROOKERY_TRACKING_URI=http://mlflow:5000.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # Work per request (rookery.serving.budget): a client picks tile and overlap, so both are bounded, and so is
    # the sum over a request's photos of their pixels and of tiles x network input pixels (413 past either).
    min_tile: int = 64  # smallest tile a request may ask for, in photo pixels; overlap must stay under tile / 2
    max_request_megapixels: float = 1_000.0  # decoded pixels over all photos of one request (~47 survey photos)
    max_request_work_megapixels: float = 2_000.0  # tiles x network input pixels over all photos of one request
    max_detections_per_tile: int = 1_000  # per tile of the network; more are cut (highest scores kept)
    max_detections_per_photo: int = 20_000  # per photo; the answer says when the cap was hit
    # Load (rookery.serving.throttle): counting requests per client per minute (429 past it), and in flight per
    # process (503 past it); 0 = no limit.
    rate_limit_per_minute: int = 120
    max_counting_requests: int = 32
    # Retention of the history's stored photos (0 = keep): by age, and by the size of the stored files.
    retention_days: float = 0.0
    retention_gb: float = 0.0
    retention_check_seconds: float = 3600.0
    # Hosts the server answers (the Host header; DNS rebinding): empty = localhost, 127.0.0.1, ::1 and `host`.
    # Comma-separated in the environment: ROOKERY_ALLOWED_HOSTS=counts.example.org,localhost ('*' allows any).
    allowed_hosts: Annotated[list[str], NoDecode] = []
    host: str = "127.0.0.1"  # the address `rookery serve` binds (set by its --host)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    def hosts(self) -> list[str]:
        """The Host header values the server answers: `allowed_hosts`, or loopback names and the bind address."""
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        defaults = ["localhost", "127.0.0.1", "::1", "[::1]"]
        bind = self.host.strip().strip("[]")
        if bind and bind not in ("0.0.0.0", "::"):
            defaults.append(f"[{bind}]" if ":" in bind else bind)
        return list(dict.fromkeys(defaults))

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
