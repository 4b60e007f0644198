"""``ModelServerConfig``: reading the text file and checking it like ServerCore does.

The config file is the one TF Serving reads (``--model_config_file``), parsed
with the protos that ship in tensorflow-serving-api, so a file that works here
works in the container and vice versa. Validation mirrors
tensorflow_serving/model_servers/server_core.cc (duplicate names, platform).

Deliberate difference: TF Serving rejects a relative ``base_path`` ("Expected
model X to have an absolute path or URI"); tierkit resolves it against the
working directory (a local stack runs from the project root) and logs a warning
that the real server would refuse it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from graph_service.errors import failed_precondition, invalid_argument

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig

TENSORFLOW_PLATFORM = "tensorflow"

log = logging.getLogger("graph_service")


class ConfigFileError(Exception):
    """The config file cannot be read or is not a valid text ModelServerConfig."""


def read_model_server_config(path: str | os.PathLike[str]) -> ModelServerConfig:
    """Parse a text-format ModelServerConfig; the message names the file and the parse error."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigFileError(f"Cannot read model config file '{path}': {exc.strerror}") from None
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        # protobuf's own wording (what TF Serving prints), then TF Serving's.
        raise ConfigFileError(
            f"Invalid protobuf file: '{path}': Error parsing text-format "
            f"{config.DESCRIPTOR.full_name}: {exc}"
        ) from None
    return config


def single_model_config(model_name: str, model_base_path: str) -> ModelServerConfig:
    """What --model_name/--model_base_path mean (main.cc BuildSingleModelConfig)."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = model_base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def _platform(model: ModelConfig) -> str:
    if model.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if model.model_platform:
            raise invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) "
                "and ModelServerConfig::model_platform."
            )
        if model.model_type == model_server_config_pb2.TENSORFLOW:
            return TENSORFLOW_PLATFORM
        raise invalid_argument(
            f"ModelServerConfig::model_type choice {model.model_type} not supported."
        )
    if not model.model_platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) "
            "nor ModelServerConfig::model_platform."
        )
    return model.model_platform


def validate_config(new: ModelServerConfig, current: ModelServerConfig | None) -> ModelServerConfig:
    """Check a config transition and return the config with absolute base paths.

    Raises ServingError with ServerCore's code and message; the caller keeps
    the previous config when it does.
    """
    if current is not None and current.WhichOneof("config") not in (None, "model_config_list"):
        raise failed_precondition(
            "Cannot transition to requested config. It is only legal to transition "
            "from one ModelConfigList to another."
        )
    kind = new.WhichOneof("config")
    if kind == "custom_model_config":
        raise invalid_argument("Missing custom_model_config_loader in ServerCore Options")
    resolved = ModelServerConfig()
    resolved.CopyFrom(new)
    if kind is None:
        return resolved
    seen: set[str] = set()
    for model in resolved.model_config_list.config:
        if model.name in seen:
            raise invalid_argument(
                f"Illegal to list model {model.name} multiple times in config list"
            )
        seen.add(model.name)
        if not model.name:
            raise invalid_argument("ModelConfig has no name specified.")
        platform = _platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(f"Model {model.name} requests unsupported platform {platform}")
        if not model.base_path:
            raise invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; got base_path()="
            )
        if "://" in model.base_path:
            raise invalid_argument(
                f"Model {model.name}: base_path {model.base_path} uses a URI scheme; "
                "tierkit's graph_service reads local directories only"
            )
        if not os.path.isabs(model.base_path):
            absolute = os.path.abspath(model.base_path)
            log.warning(
                "Model %s has a relative base_path %r; resolved to %s "
                "(tensorflow_model_server requires an absolute path)",
                model.name,
                model.base_path,
                absolute,
            )
            model.base_path = absolute
    if current is not None and current.WhichOneof("config") == "model_config_list":
        old_platforms = {m.name: _platform(m) for m in current.model_config_list.config}
        for model in resolved.model_config_list.config:
            old = old_platforms.get(model.name)
            if old is not None and old != _platform(model):
                raise invalid_argument(
                    f"Illegal to change a model's platform. For model {model.name} platform "
                    f"was {old} and new platform requested is {_platform(model)}"
                )
    return resolved


def describe(config: ModelServerConfig) -> str:
    """One line per model for the startup log."""
    parts = []
    for model in config.model_config_list.config:
        policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
        parts.append(f"{model.name} <- {model.base_path} ({policy})")
    return "; ".join(parts) or "(no models)"


__all__ = [
    "ConfigFileError",
    "ModelConfig",
    "ModelServerConfig",
    "describe",
    "read_model_server_config",
    "single_model_config",
    "validate_config",
]
