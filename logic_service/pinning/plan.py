"""The effective config from today's inputs: the user's file, the version folders, the database.

``plan_effective`` is what the keeper writes, ``./scripts/up`` seeds
(``seed``) and a blue-green label move sends in its reload request
(``served_config``): one computation, so the three never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from sqlalchemy import Engine

from logic_service.pinning.in_use import Use, versions_in_use
from logic_service.pinning.models_config import (
    EffectiveConfig,
    ModelServerConfig,
    base_dir_of,
    describe_policy,
    effective_config,
    published_versions,
    read_user_config,
)
from logic_service.pinning.pins import PinStore
from logic_service.rollout_state import RolloutStore


@dataclass
class Plan:
    effective: EffectiveConfig
    user_text: bytes
    uses: dict[str, dict[int, list[Use]]]
    policies: dict[str, str]
    current: bytes | None = None  # the effective file as it is now


def plan_effective(
    models_config: Path, rollouts: RolloutStore, pins: PinStore, stable_label: str = "stable"
) -> Plan:
    """The effective config from the user's file, the version folders, rollouts and pins.

    Relative base paths resolve against the working directory, as the graph
    tier resolves its own (./scripts/up runs both tiers from the project root;
    compose mounts the repository at /app/serving_models in both containers).
    Raises ConfigUnreadable.
    """
    user = read_user_config(models_config)
    records = rollouts.load_all()
    active = pins.active()
    uses: dict[str, dict[int, list[Use]]] = {}
    on_disk: dict[str, set[int] | None] = {}
    policies: dict[str, str] = {}
    for entry in user.config.model_config_list.config:
        record = records.get(entry.name)
        uses[entry.name] = versions_in_use(
            record.spec if record else None,
            dict(entry.version_labels),
            [p for p in active if p.model == entry.name],
            stable_label,
        )
        folder = base_dir_of(entry.base_path, Path.cwd())
        on_disk[entry.name] = published_versions(folder) if folder is not None else None
        policies[entry.name] = describe_policy(entry)
    in_use = {name: set(found) for name, found in uses.items()}
    return Plan(effective_config(user, in_use, on_disk), user.text, uses, policies)


def served_config(models_config: Path, engine: Engine, stable_label: str = "stable") -> Any:
    """The ModelServerConfig a ``HandleReloadConfigRequest`` should carry for this user file now.

    The effective config (so a reload never drops a version in use), base paths
    made absolute: TF Serving refuses relative ones in a reload request.
    """
    plan = plan_effective(models_config, RolloutStore(engine), PinStore(engine), stable_label)
    config = ModelServerConfig()
    text_format.Parse(plan.effective.text.decode("utf-8"), config)
    for entry in config.model_config_list.config:
        folder = base_dir_of(entry.base_path, Path.cwd())
        if folder is not None:
            entry.base_path = os.path.abspath(folder)
    return config
