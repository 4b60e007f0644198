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

from logic_service.pinning.api_use import ApiContext
from logic_service.pinning.in_use import Use, last_servable, servable_among, versions_in_use
from logic_service.pinning.models_config import (
    EffectiveConfig,
    ModelServerConfig,
    base_dir_of,
    describe_policy,
    effective_config,
    published_versions,
    read_user_config,
    repository_entry,
)
from logic_service.pinning.pins import PinStore
from logic_service.storage.retired_apis import load_retired
from logic_service.storage.rollout_state import RolloutStore
from logic_service.versions.discovery import repository_models


@dataclass
class Plan:
    effective: EffectiveConfig
    user_text: bytes
    uses: dict[str, dict[int, list[Use]]]
    policies: dict[str, str]
    current: bytes | None = None  # the effective file as it is now


def discovered_entries(user: ModelServerConfig, repository: Path | None) -> list[Any]:
    """Entries for the repository's model folders that models.config does not name."""
    if repository is None:
        return []
    named = {entry.name for entry in user.model_config_list.config}
    return [
        repository_entry(name, str(repository / name))
        for name in repository_models(repository)
        if name not in named
    ]


def plan_effective(
    models_config: Path,
    rollouts: RolloutStore,
    pins: PinStore,
    stable_label: str = "stable",
    apis: ApiContext | None = None,
    repository: Path | None = None,
) -> Plan:
    """The effective config from the user's file, the version folders, rollouts, pins and APIs.

    Relative base paths resolve against the working directory, as the graph
    tier resolves its own (./scripts/up runs both tiers from the project root;
    compose mounts the repository at /app/serving_models in both containers).
    ``repository``: the model repository, whose model folders models.config
    does not name get an entry of their own (``discovered_entries``).
    Raises ConfigUnreadable.
    """
    user = read_user_config(models_config)
    added = discovered_entries(user.config, repository)
    # Pins before rollouts: ``rollout set`` stores its rollout and only then drops the
    # pending pins that held its versions, so a plan that read the rollouts first could
    # miss both (the old rollout, then no pins) and unload a version the new one names
    # (seen on CI: a canary's baseline unloaded right after `rollout set` returned).
    active = pins.active()
    records = rollouts.load_all()
    apis = apis if apis is not None else ApiContext()
    retired = load_retired(rollouts.engine)
    uses: dict[str, dict[int, list[Use]]] = {}
    on_disk: dict[str, set[int] | None] = {}
    selectable: dict[str, set[int]] = {}
    policies: dict[str, str] = {}
    for entry in [*user.config.model_config_list.config, *added]:
        record = records.get(entry.name)
        folder = base_dir_of(entry.base_path, Path.cwd())
        on_disk[entry.name] = published_versions(folder) if folder is not None else None
        needs = apis.needs(entry, folder, on_disk[entry.name], retired.get(entry.name, {}))
        uses[entry.name] = versions_in_use(
            record.spec if record else None,
            dict(entry.version_labels),
            [p for p in active if p.model == entry.name],
            stable_label,
            needs.uses,
            last_servable(
                apis,
                entry.name,
                servable_among(entry, on_disk[entry.name], needs.selectable),
                dict(entry.version_labels).get(stable_label),
            ),
        )
        policies[entry.name] = describe_policy(entry)
        if needs.selectable is not None:
            selectable[entry.name] = set(needs.selectable)
            policies[entry.name] += " among versions of live APIs"
    in_use = {name: set(found) for name, found in uses.items()}
    effective = effective_config(user, in_use, on_disk, selectable, added)
    return Plan(effective, user.text, uses, policies)


def served_config(
    models_config: Path,
    engine: Engine,
    stable_label: str = "stable",
    apis: ApiContext | None = None,
    repository: Path | None = None,
) -> Any:
    """The ModelServerConfig a ``HandleReloadConfigRequest`` should carry for this user file now.

    The effective config (so a reload never drops a version in use), base paths
    made absolute: TF Serving refuses relative ones in a reload request.
    """
    plan = plan_effective(
        models_config, RolloutStore(engine), PinStore(engine), stable_label, apis, repository
    )
    config = ModelServerConfig()
    text_format.Parse(plan.effective.text.decode("utf-8"), config)
    for entry in config.model_config_list.config:
        folder = base_dir_of(entry.base_path, Path.cwd())
        if folder is not None:
            entry.base_path = os.path.abspath(folder)
    return config
