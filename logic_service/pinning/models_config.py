"""The user's models.config, the version folders, and the effective config derived from them.

The user owns ``models.config`` (their version policies and labels). The
graph tier reads the *effective* config instead: for each model with versions
in use, its policy becomes ``specific { versions: [what the user's policy
selects from the published folders] + [versions in use] }``, so TF Serving
(and graph_service) keep them loaded by their own mechanism; every other
entry, and everything else in the file, stays as the user wrote it. With
nothing in use the effective config is the user's file, byte for byte.

Pure functions (files in, bytes out), so every logic process computes the same
bytes from the same inputs and the one that writes them is interchangeable.
The selection mirrors TF Serving's FileSystemStoragePathSource: integer-named
folders under ``base_path``; ``latest`` keeps the N highest, ``all`` every
one, ``specific`` the listed ones that exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

# TF Serving's config protos import no TensorFlow module (unlike its apis/ protos).
from tensorflow_serving.config import model_server_config_pb2

ModelServerConfig = model_server_config_pb2.ModelServerConfig

HEADER = (
    "# Written by tierkit's logic tier from {source}: the versions in use (rollouts,\n"
    "# labels, pins, the last servable version) are added to each model's policy so\n"
    "# that they stay loaded; models published in the repository are added too.\n"
    "# Do not edit: edit {source}; this file follows it within a second.\n"
)


class ConfigUnreadable(ValueError):
    """models.config is missing or not a ModelServerConfig; the message says which."""


@dataclass(frozen=True)
class UserConfig:
    path: Path
    text: bytes
    config: ModelServerConfig


def read_user_config(path: Path) -> UserConfig:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigUnreadable(f"{path}: cannot read: {exc.strerror or exc}") from exc
    config = ModelServerConfig()
    try:
        text_format.Parse(text.decode("utf-8"), config)
    except (text_format.ParseError, UnicodeDecodeError) as exc:
        raise ConfigUnreadable(f"{path}: not a valid ModelServerConfig: {exc}") from exc
    return UserConfig(path, text, config)


def labels_of(config: ModelServerConfig, model: str) -> dict[str, int]:
    for entry in config.model_config_list.config:
        if entry.name == model:
            return dict(entry.version_labels)
    return {}


def base_dir_of(base_path: str, relative_to: Path) -> Path | None:
    """Where a model's versions are, as the graph tier resolves it; None for a URI."""
    if "://" in base_path:
        return None
    path = Path(base_path)
    return path if path.is_absolute() else relative_to / path


def published_versions(folder: Path) -> set[int] | None:
    """Integer-named folders under ``folder`` (None when it cannot be listed)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    found: set[int] = set()
    for entry in entries:
        try:
            if entry.name.isdigit() and entry.name.isascii() and entry.is_dir():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def selected_by_policy(config: model_server_config_pb2.ModelConfig, on_disk: set[int]) -> set[int]:
    """The published versions the user's ``model_version_policy`` asks for."""
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return on_disk & set(policy.specific.versions)
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return set(sorted(on_disk, reverse=True)[:count])


@dataclass(frozen=True)
class ModelPlan:
    """What the effective config does to one model."""

    name: str
    selected: tuple[int, ...]  # by the user's policy, from the folders
    pinned: tuple[int, ...]  # in use and published: kept loaded on top of the selection
    absent: tuple[int, ...] = ()  # in use but no folder: cannot be kept loaded

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted({*self.selected, *self.pinned}))


@dataclass(frozen=True)
class EffectiveConfig:
    text: bytes
    plans: dict[str, ModelPlan] = field(default_factory=dict)  # only models it changed

    def expected(self) -> dict[str, set[int]]:
        """Versions the graph tier must report AVAILABLE for this config to count as taken."""
        return {name: set(plan.pinned) for name, plan in self.plans.items() if plan.pinned}


def repository_entry(name: str, base_path: str) -> model_server_config_pb2.ModelConfig:
    """The entry of a model found in the repository but not in models.config: TF Serving's
    defaults (``latest { num_versions: 1 }``), as ``python -m export config`` would add it."""
    entry = model_server_config_pb2.ModelConfig(
        name=name, base_path=base_path, model_platform="tensorflow"
    )
    entry.model_version_policy.latest.num_versions = 1
    return entry


def effective_config(
    user: UserConfig,
    in_use: Mapping[str, set[int]],
    on_disk: Mapping[str, set[int] | None],
    selectable: Mapping[str, set[int]] | None = None,
    added: Sequence[model_server_config_pb2.ModelConfig] = (),
) -> EffectiveConfig:
    """The config the graph tier should serve, with the plan of every model it changed.

    ``on_disk[name]`` is None when the model's folder cannot be listed: its entry
    then stays as the user wrote it (nothing known to pin against).
    ``selectable[name]``, when given, is what the user's policy selects from
    instead of every folder (the versions of live request APIs, ``api_use``).
    ``added``: entries of models published in the repository that models.config
    does not name (``repository_entry``), served without an edit of it.
    """
    config = ModelServerConfig()
    config.CopyFrom(user.config)
    config.model_config_list.config.extend(added)
    plans: dict[str, ModelPlan] = {}
    for entry in config.model_config_list.config:
        used = in_use.get(entry.name, set())
        disk = on_disk.get(entry.name)
        if not used or disk is None:
            continue
        pinned = used & disk
        absent = tuple(sorted(used - disk))
        pool = (selectable or {}).get(entry.name, disk) & disk
        selected = tuple(sorted(selected_by_policy(entry, pool)))
        plan = ModelPlan(entry.name, selected, tuple(sorted(pinned)), absent)
        if not pinned:
            continue
        entry.model_version_policy.Clear()
        entry.model_version_policy.specific.versions.extend(plan.versions)
        plans[entry.name] = plan
    if not plans and not added:
        return EffectiveConfig(user.text)
    source = user.path.name
    text = HEADER.format(source=source) + text_format.MessageToString(config)
    return EffectiveConfig(text.encode("utf-8"), plans)


def describe_policy(config: model_server_config_pb2.ModelConfig) -> str:
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all {}"
    if choice == "specific":
        return f"specific {sorted(policy.specific.versions)}"
    count = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return f"latest {{ num_versions: {count} }}"


def write_atomically(path: Path, text: bytes) -> None:
    """A temporary file in the same folder renamed over ``path``: a poller never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
