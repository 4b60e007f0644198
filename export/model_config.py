"""Edit one entry of TF Serving's ``models.config`` (``ModelServerConfig`` text proto).

The file is parsed and written with protobuf's own text format and TF
Serving's own message type, so whatever the real ``tensorflow_model_server``
accepts, this keeps, and whatever it would reject, this refuses. Other models'
entries are left untouched; the file is replaced atomically so a server
polling it never reads half a file. Comments are not preserved (protobuf's
text format does not keep them).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from export.errors import ExportError

_LABEL = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class ModelEntryChange:
    """What ``python -m export config`` was asked to set; None = keep as is."""

    name: str
    base_path: str | None = None
    platform: str | None = None
    policy: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    remove_labels: tuple[str, ...] = ()


def parse_labels(items: list[str]) -> dict[str, int]:
    """``stable=123`` items -> {"stable": 123}."""
    labels: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _LABEL.match(key):
            raise ExportError(
                f"--label {item!r}: expected LABEL=VERSION, the label made of letters, digits, "
                "'_' and '-'"
            )
        if not value.isdigit():
            raise ExportError(f"--label {item!r}: the version must be a non-negative integer")
        labels[key] = int(value)
    return labels


def _apply_policy(config: model_server_config_pb2.ModelConfig, policy: str) -> None:
    kind, _, argument = policy.partition(":")
    target = config.model_version_policy
    if kind == "latest":
        count = argument or "1"
        if not count.isdigit() or int(count) < 1:
            raise ExportError(f"--policy {policy!r}: latest:N needs N >= 1")
        target.Clear()
        target.latest.num_versions = int(count)
    elif kind == "all" and not argument:
        target.Clear()
        target.all.SetInParent()
    elif kind == "specific":
        parts = [part.strip() for part in argument.split(",") if part.strip()]
        if not parts or not all(part.isdigit() for part in parts):
            raise ExportError(
                f"--policy {policy!r}: specific needs version numbers, e.g. specific:1,2"
            )
        target.Clear()
        target.specific.versions.extend(int(part) for part in parts)
    else:
        raise ExportError(f"--policy {policy!r}: expected latest:N, all or specific:1,2")


def read_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    """The parsed file, or an empty config when it does not exist yet."""
    config = model_server_config_pb2.ModelServerConfig()
    if not path.exists():
        return config
    if not path.is_file():
        raise ExportError(f"--config {path}: not a file")
    try:
        text_format.Parse(path.read_text(), config)
    except (text_format.ParseError, UnicodeDecodeError) as exc:
        raise ExportError(f"--config {path}: not a valid ModelServerConfig: {exc}") from exc
    if config.WhichOneof("config") == "custom_model_config":
        raise ExportError(f"--config {path}: holds a custom_model_config; cannot edit it")
    return config


def apply_change(
    config: model_server_config_pb2.ModelServerConfig, change: ModelEntryChange, default_base: str
) -> tuple[model_server_config_pb2.ModelConfig, bool]:
    """Update the entry named ``change.name`` (or add it); returns it and whether it is new."""
    entries = config.model_config_list.config
    entry = next((item for item in entries if item.name == change.name), None)
    created = entry is None
    if entry is None:
        entry = entries.add()
        entry.name = change.name
        entry.base_path = default_base
        entry.model_platform = "tensorflow"
        entry.model_version_policy.latest.num_versions = 1
    if change.base_path is not None:
        if not change.base_path.strip():
            raise ExportError("--base-path must not be empty")
        entry.base_path = change.base_path
    if change.platform is not None:
        if not change.platform.strip():
            raise ExportError("--platform must not be empty")
        entry.model_platform = change.platform
    if change.policy is not None:
        _apply_policy(entry, change.policy)
    for label in change.remove_labels:
        if label not in entry.version_labels:
            raise ExportError(
                f"--remove-label {label!r}: model {change.name!r} has no such label "
                f"(labels: {', '.join(sorted(entry.version_labels)) or 'none'})"
            )
        del entry.version_labels[label]
    for label, version in change.labels.items():
        entry.version_labels[label] = version
    return entry, created


def write_config(path: Path, config: model_server_config_pb2.ModelServerConfig) -> None:
    """Write via a temporary file in the same directory and an atomic rename."""
    text = text_format.MessageToString(config)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ExportError(f"--config {path}: cannot write: {exc}") from exc
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        if path.exists():
            os.chmod(tmp_name, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise ExportError(f"--config {path}: cannot write: {exc}") from exc


def render_entry(entry: model_server_config_pb2.ModelConfig) -> str:
    return text_format.MessageToString(entry).rstrip()
