"""The logic tier's one configuration object.

Values come, lowest priority first, from the defaults below (chosen so that
``./scripts/up`` needs no file at all), then ``logic.yaml`` (path from the
``--config`` flag or ``TIERKIT_LOGIC_CONFIG``), then environment variables
``TIERKIT_<FIELD>`` with ``__`` between nested fields
(``TIERKIT_GRAPH__PROTOCOL=rest``, ``TIERKIT_LOG__LEVEL=DEBUG``). Lists such as
``models`` are given as JSON in the environment
(``TIERKIT_MODELS='[{"name": "ctr"}]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

CONFIG_ENV = "TIERKIT_LOGIC_CONFIG"
ENV_PREFIX = "TIERKIT_"


class _Strict(BaseModel):
    """A typo in logic.yaml must fail loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class GraphSettings(_Strict):
    """Where and how to reach the graph tier (TF Serving or graph_service)."""

    protocol: Literal["grpc", "rest"] = "grpc"
    grpc_address: str = "127.0.0.1:8500"
    rest_url: str = "http://127.0.0.1:8501"
    deadline_ms: int = Field(2000, gt=0, description="Deadline of one graph-tier call.")
    retry_after_s: int = Field(
        1, ge=0, description="Retry-After sent with a 503 while the graph tier is unreachable."
    )


class ModelSettings(_Strict):
    """One model the logic tier serves."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    base_path: Path | None = Field(
        None, description="Version directories of this model; default <repository>/<name>."
    )
    signature_name: str = "serving_default"
    deadline_ms: int | None = Field(None, gt=0, description="Overrides graph.deadline_ms.")


class LogSettings(_Strict):
    dir: Path = Path("logs")
    file: str = "logic.log"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    retention_days: int = Field(
        3, ge=0, description="Dated files kept next to the log; older ones are gzipped to archive/."
    )
    archive_dir: str = "archive"
    console: bool = Field(True, description="Also log to stderr (off when a runner captures it).")


class LimitSettings(_Strict):
    max_records: int = Field(1000, gt=0, description="Records in one request.")
    max_body_bytes: int = Field(1_048_576, gt=0, description="Size of one request body.")


class FeatureSettings(_Strict):
    allow_pickle: bool = Field(
        False,
        description="Load pickle transformers (runs arbitrary code: trusted repositories only).",
    )


class LogicSettings(BaseSettings):
    """Everything the logic tier reads at start; see module docstring for the sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    graph: GraphSettings = GraphSettings()
    model_repository: Path = Path("serving_models")
    models: list[ModelSettings] = Field(default_factory=lambda: [ModelSettings(name="ctr")])
    status_refresh_s: float = Field(
        1.0, gt=0, description="How often versions and labels are read from the graph tier."
    )
    stable_label: str = "stable"
    log: LogSettings = LogSettings()
    limits: LimitSettings = LimitSettings()
    features: FeatureSettings = FeatureSettings()
    metrics_dir: Path | None = Field(
        None,
        description="prometheus_client multiprocess directory when workers > 1 "
        "(default: <log.dir>/prometheus-<port>).",
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {', '.join(duplicates)}")
        return models

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file, which arrives as init kwargs (see load_settings).
        return (env_settings, init_settings)

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def model(self, name: str) -> ModelSettings | None:
        return next((m for m in self.models if m.name == name), None)

    def base_path(self, model: ModelSettings) -> Path:
        return model.base_path or self.model_repository / model.name

    def deadline_s(self, model: ModelSettings) -> float:
        return (model.deadline_ms or self.graph.deadline_ms) / 1000.0


class SettingsError(ValueError):
    """logic.yaml is missing or malformed; the message names the file and the problem."""


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: must hold a mapping of settings, got {type(data).__name__}")
    return data


def load_settings(config: Path | str | None = None, **overrides: Any) -> LogicSettings:
    """Settings from ``config`` (else ``$TIERKIT_LOGIC_CONFIG``, else none), env, overrides.

    ``overrides`` (the CLI flags) win over everything. A missing file named
    explicitly is an error; no file at all means defaults plus environment.
    """
    path = config or os.environ.get(CONFIG_ENV)
    data = read_yaml(Path(path)) if path else {}
    settings = LogicSettings(**data)
    if overrides:
        merged = settings.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        settings = LogicSettings.model_validate(merged)
    return settings
