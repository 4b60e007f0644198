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
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from logic_service.api_config import ApiVersionSettings, check_api_versions
from logic_service.rollout_config import RolloutSpec

CONFIG_ENV = "TIERKIT_LOGIC_CONFIG"
ENV_PREFIX = "TIERKIT_"


class _Strict(BaseModel):
    """A typo in logic.yaml must fail loudly instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class GraphBatchingSettings(_Strict):
    """Merge concurrent predicts of one version into one graph call (graph_batching.py)."""

    enabled: bool = True
    max_rows: int = Field(
        64, ge=1, description="Rows in one merged call; a request this large goes alone."
    )
    max_in_flight: int = Field(
        2, ge=1, description="Calls in flight per version before requests wait to be merged."
    )


class GraphSettings(_Strict):
    """Where and how to reach the graph tier (TF Serving or graph_service)."""

    protocol: Literal["grpc", "rest"] = "grpc"
    grpc_address: str = "127.0.0.1:8500"
    rest_url: str = "http://127.0.0.1:8501"
    deadline_ms: int = Field(2000, gt=0, description="Deadline of one graph-tier call.")
    retry_after_s: int = Field(
        1, ge=0, description="Retry-After sent with a 503 while the graph tier is unreachable."
    )
    batching: GraphBatchingSettings = Field(default_factory=GraphBatchingSettings)


class GraphConfigSettings(_Strict):
    """Versions in use stay loaded: the effective config the graph tier reads (pinning/)."""

    models_config: Path = Field(
        Path("models.config"),
        description="The user's ModelServerConfig (policies, labels); read only. Relative "
        "base paths in it resolve against the working directory, as the graph tier's do.",
    )
    effective_file: Path | None = Field(
        None,
        description="Where the keeper writes the effective config the graph tier polls "
        "(./scripts/up: var/graph/models.config; compose: the graph-config volume); "
        "unset: versions are not pinned and rollout set refuses versions not loaded.",
    )
    interval_s: float = Field(1.0, gt=0, description="How often the keeper looks.")
    pin_wait_s: float = Field(
        60.0, gt=0, description="rollout set waits this long for a published version to load."
    )
    verify_s: float = Field(
        60.0,
        gt=0,
        description="The keeper restores the last good config when pinned versions are not "
        "AVAILABLE this long after it wrote a new one.",
    )


class ModelSettings(_Strict):
    """One model the logic tier serves."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    base_path: Path | None = Field(
        None, description="Version directories of this model; default <repository>/<name>."
    )
    signature_name: str = "serving_default"
    deadline_ms: int | None = Field(None, gt=0, description="Overrides graph.deadline_ms.")
    rollout: RolloutSpec | None = Field(
        None, description="Traffic strategy (split, canary, blue_green, bandit; shadow, holdout)."
    )
    api_versions: dict[str, ApiVersionSettings] = Field(
        default_factory=dict,
        description="Input-schema APIs (v1, v2...) marked deprecated, with sunset and successor; "
        "which model versions serve which API is in their manifests (docs/api_versions.md).",
    )

    @field_validator("api_versions")
    @classmethod
    def _api_names(cls, versions: dict[str, ApiVersionSettings]) -> dict[str, ApiVersionSettings]:
        return check_api_versions(versions)


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
    max_depth: int = Field(32, gt=0, description="Nesting of arrays/objects in one body.")
    max_string_chars: int = Field(
        65_536, gt=0, description="Length of one string (or object key) in a body."
    )


class SecuritySettings(_Strict):
    """Caller authentication, rate limit and CORS of the logic tier (see security.py)."""

    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys accepted on predict, feedback and evaluation (Bearer or X-API-Key); "
        "empty turns auth off (the local default).",
    )
    rate_limit_per_s: float = Field(
        0.0, ge=0, description="Requests a second per key (per address without auth); 0 = off."
    )
    rate_limit_burst: float | None = Field(
        None, gt=0, description="Requests a caller may save up; default rate_limit_per_s."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed by CORS; empty = no CORS."
    )


class FeatureSettings(_Strict):
    allow_pickle: bool = Field(
        False,
        description="Load pickle transformers (runs arbitrary code: trusted repositories only).",
    )


class StorageSettings(_Strict):
    """The database of the prediction log (and rollout state) and how predictions reach it."""

    database_url: str = Field(
        "sqlite:///var/tierkit.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to the working "
        "directory and created on demand; postgresql://user@host:5432/db (or postgres://) "
        "uses psycopg 3.",
    )
    database_password_file: Path | None = Field(
        None,
        description="File holding the database password (a compose or Kubernetes secret); "
        "its content without the trailing newline replaces any password in database_url.",
    )
    migrate_on_start: bool = Field(
        True,
        description="Upgrade the schema to this release's head at start, under a lock; false: "
        "refuse to start unless it is at head (run `python -m logic_service db upgrade`).",
    )
    record_predictions: bool = Field(True, description="Write every answer to the log.")
    queue_size: int = Field(10_000, gt=0, description="Records waiting; beyond, counted drops.")
    batch_size: int = Field(500, gt=0, description="Rows per insert.")
    flush_interval_ms: int = Field(200, gt=0, description="Longest wait before an insert.")
    busy_timeout_ms: int = Field(5000, ge=0, description="SQLite: wait on another writer.")
    write_retry_s: float = Field(
        30.0, ge=0, description="Retry a failed insert this long before counting it dropped."
    )
    feedback_wait_ms: int = Field(
        1000,
        ge=0,
        description="Feedback for an id not in the log yet waits this long (other workers' "
        "queues) before answering 404.",
    )

    @field_validator("database_password_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # compose's `${DB_PASSWORD_FILE:-}` gives "": no file, not the working directory
        return None if isinstance(value, str) and not value.strip() else value


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
    startup_wait_s: float = Field(
        30.0,
        ge=0,
        description="At start, wait this long at most for the feature artifacts of the versions "
        "the graph tier serves before accepting connections, so a (re)started replica never "
        "holds requests while it loads; 0 = accept at once.",
    )
    stable_label: str = "stable"
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of /admin/*; unset keeps the admin API disabled."
    )
    admin_token_file: Path | None = Field(
        None,
        description="File holding admin_token (a compose or Kubernetes secret); read at start "
        "when admin_token itself is unset.",
    )
    rollout_refresh_s: float = Field(
        1.0, gt=0, description="How often workers re-read rollout state from the database."
    )
    graph_config: GraphConfigSettings = GraphConfigSettings()
    api_retire_window_s: float = Field(
        86_400.0,
        ge=0,
        description="An API version may be retired only when the prediction log holds no "
        "request to it within this many seconds (docs/api_versions.md).",
    )
    log: LogSettings = LogSettings()
    limits: LimitSettings = LimitSettings()
    features: FeatureSettings = FeatureSettings()
    security: SecuritySettings = SecuritySettings()
    storage: StorageSettings = StorageSettings()
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

    @model_validator(mode="after")
    def _admin_token_from_file(self) -> LogicSettings:
        if self.admin_token is None and self.admin_token_file is not None:
            try:
                token = self.admin_token_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ValueError(
                    f"admin_token_file: cannot read {self.admin_token_file}: "
                    f"{exc.strerror or exc}"
                ) from exc
            if not token:
                raise ValueError(f"admin_token_file: {self.admin_token_file} is empty")
            self.admin_token = SecretStr(token)
        return self

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
