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
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from logic_service.settings.api_versions import ApiVersionSettings, check_api_versions
from logic_service.settings.rollout import RolloutSpec
from logic_service.settings.storage import StorageSettings
from logic_service.settings.strict import Strict, blank_as_unset

CONFIG_ENV = "TIERKIT_LOGIC_CONFIG"
ENV_PREFIX = "TIERKIT_"


class GraphBatchingSettings(Strict):
    """Merge concurrent predicts of one version into one graph call (graph/batching.py)."""

    enabled: bool = True
    max_rows: int = Field(
        64, ge=1, description="Rows in one merged call; a request this large goes alone."
    )
    max_in_flight: int = Field(
        2, ge=1, description="Calls in flight per version before requests wait to be merged."
    )


class GraphSettings(Strict):
    """Where and how to reach the graph tier (TF Serving or graph_service)."""

    protocol: Literal["grpc", "rest"] = "grpc"
    grpc_address: str = "127.0.0.1:8500"
    rest_url: str = "http://127.0.0.1:8501"
    deadline_ms: int = Field(2000, gt=0, description="Deadline of one graph-tier call.")
    retry_after_s: int = Field(
        1, ge=0, description="Retry-After sent with a 503 while the graph tier is unreachable."
    )
    batching: GraphBatchingSettings = Field(default_factory=GraphBatchingSettings)
    metrics_path: str | None = Field(
        "/monitoring/prometheus/metrics",
        description="Where the graph tier serves Prometheus on its REST port (its "
        "--monitoring_config_file); the dashboard shows its counters; empty: not read.",
    )

    @field_validator("metrics_path", mode="before")
    @classmethod
    def _empty_metrics_path(cls, value: Any) -> Any:
        return blank_as_unset(value)


class GraphConfigSettings(Strict):
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


class ModelSettings(Strict):
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


class LogSettings(Strict):
    dir: Path = Path("logs")
    file: str = "logic.log"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    retention_days: int = Field(
        3, ge=0, description="Dated files kept next to the log; older ones are gzipped to archive/."
    )
    archive_dir: str = "archive"
    max_file_bytes: int = Field(
        100 << 20, ge=0, description="A day's file is rotated early at this size; 0 = daily only."
    )
    archive_retention_days: int = Field(
        30, ge=0, description="Gzipped archives older than this are deleted; 0 = kept."
    )
    max_total_bytes: int = Field(
        1 << 30,
        ge=0,
        description="Cap on the log, its dated files and archives together; the oldest "
        "go first; 0 = no cap.",
    )
    console: bool = Field(True, description="Also log to stderr (off when a runner captures it).")


class LimitSettings(Strict):
    max_records: int = Field(1000, gt=0, description="Records in one request.")
    max_body_bytes: int = Field(1_048_576, gt=0, description="Size of one request body.")
    max_depth: int = Field(32, gt=0, description="Nesting of arrays/objects in one body.")
    max_string_chars: int = Field(
        65_536, gt=0, description="Length of one string (or object key) in a body."
    )


Scope = Literal["predict", "feedback", "read"]
ALL_SCOPES: frozenset[str] = frozenset(("predict", "feedback", "read"))


class ApiKeySettings(Strict):
    """A key with only some scopes: ``{key: ..., scopes: [read]}`` for a dashboard viewer."""

    key: SecretStr
    scopes: list[Scope] = Field(
        default_factory=lambda: ["predict", "feedback", "read"],
        min_length=1,
        description="predict; feedback; read: /dashboard, its feed and the evaluation endpoint.",
    )


class SecuritySettings(Strict):
    """Caller authentication, rate limit and CORS of the logic tier (see api/security.py)."""

    api_keys: list[SecretStr | ApiKeySettings] = Field(
        default_factory=list,
        description="Keys accepted on predict, feedback, evaluation and the dashboard (Bearer, "
        "X-API-Key, or HTTP Basic's password); a plain string has every scope, "
        "{key, scopes} only those; empty turns auth off (the local default).",
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
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token /metrics asks for (Prometheus: authorization.credentials_file); "
        "unset: /metrics is open, for a port only the scraper reaches (docs/security.md).",
    )
    metrics_token_file: Path | None = Field(
        None, description="File holding metrics_token (a secret); read when it is unset."
    )

    @model_validator(mode="after")
    def _metrics_token_from_file(self) -> SecuritySettings:
        if self.metrics_token is None and self.metrics_token_file is not None:
            self.metrics_token = SecretStr(
                _secret_file("metrics_token_file", self.metrics_token_file)
            )
        return self


class FeatureSettings(Strict):
    """What a version's feature artifacts may do when they load (docs/security.md)."""

    allow_pickle: bool = Field(
        False,
        description="Load pickle transformers (runs arbitrary code: trusted repositories only).",
    )
    trusted_repositories: list[Path] = Field(
        default_factory=list,
        description="Folders whose versions may run code (feature code, pickles) once its "
        "sha256 matches the manifest; whoever can write there can run code in the logic tier.",
    )
    trust_model_repository: bool = Field(
        False,
        description="Trust model_repository and every model's base path as if listed in "
        "trusted_repositories (./scripts/up turns it on: the repository is yours).",
    )


def _secret_file(setting: str, path: Path) -> str:
    """A secret's file content without the trailing newline; a ValueError naming the setting."""
    try:
        token = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ValueError(f"{setting}: {path} is empty")
    return token


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
            self.admin_token = SecretStr(_secret_file("admin_token_file", self.admin_token_file))
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
