"""Which versions of a model are in use, and why: a rollout's role, a label, a pin.

This is the one definition the graph-config keeper pins by, the admin API
shows (``GET /admin/models/{model}/versions``) and a versions CLI can ask
(``in_use_now``): a version is in use while

- the model's rollout names it in any role (split arm, canary baseline or
  candidate, blue-green active or standby, bandit arm, shadow target, holdout
  control), labels resolved through models.config; a canary without a
  baseline uses the stable label, as routing does;
- a ``version_labels`` entry of models.config points at it;
- a pin holds it (``pins``: an operator's, or a ``rollout set`` waiting for it);
- a live request API needs it (``api_use``): while a model serves two or more
  APIs, the newest version of each (and, until that one is ready, the version
  still serving the API);
- it is the model's **last servable version**: the version the logic tier
  serves by default, the ``stable`` label's if it is ready, else the newest
  version ready in the logic tier (AVAILABLE in the graph tier, its features
  loaded and its example run); while none is ready yet, the oldest AVAILABLE
  version not refused (``ModelRegistry.holdable_versions``). So a newer
  version the logic tier refuses (feature code that fails to load, an example
  that no longer runs) is never made the only loaded version:
  under ``latest { num_versions: 1 }`` the graph tier would otherwise unload the
  version that serves the moment the broken one is AVAILABLE. The pin moves to
  the new version once it is ready, and the old one unloads then.

A rollout of strategy ``stable`` names nothing beyond its shadow or holdout:
ending a rollout (``{"strategy": "stable"}``) releases its versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from tensorflow_serving.config import model_server_config_pb2

from logic_service.pinning.api_use import ApiContext, ApiUse, policy_candidates
from logic_service.pinning.pins import Pin, PinStore
from logic_service.settings.rollout import RolloutSpec

Kind = Literal["rollout", "label", "pin", "api", "servable"]
LAST_SERVABLE = "last servable version (what the logic tier serves by default)"


@dataclass(frozen=True)
class Use:
    """One reason a version is in use."""

    kind: Kind
    why: str  # "canary candidate", "label stable", "pin by operator: release 2"

    def public(self) -> dict[str, str]:
        return {"kind": self.kind, "why": self.why}


@dataclass(frozen=True)
class Role:
    """A target a rollout names, in the words the operator used."""

    role: str  # "canary baseline", "split arm", "shadow target"...
    target: str  # a version number or a label, as written in the spec


def rollout_roles(spec: RolloutSpec, stable_label: str = "stable") -> list[Role]:
    """Every target of ``spec`` with its role; nothing for the plain ``stable`` strategy."""
    roles: list[Role] = []
    if spec.strategy == "split":
        roles += [Role(f"split arm (weight {w:g})", arm) for arm, w in spec.weights.items()]
    elif spec.strategy == "canary":
        roles.append(Role("canary baseline", spec.baseline or stable_label))
        if spec.candidate:
            roles.append(Role("canary candidate", spec.candidate))
    elif spec.strategy == "blue_green":
        roles += [
            Role(f"blue-green {name}", target)
            for name, target in (("active", spec.active), ("standby", spec.standby))
            if target
        ]
    elif spec.strategy == "bandit":
        roles += [Role("bandit arm", arm) for arm in spec.arms]
    if spec.shadow is not None:
        roles.append(Role("shadow target", spec.shadow.target))
    if spec.holdout is not None:
        roles.append(Role("holdout control", spec.holdout.control))
    return roles


def resolve_target(target: str, labels: Mapping[str, int]) -> int | None:
    """A version number as such, a label through ``labels``; None for an unknown label."""
    return int(target) if target.isdigit() else labels.get(target)


def versions_in_use(
    rollout: RolloutSpec | None,
    labels: Mapping[str, int],
    pins: Iterable[Pin] = (),
    stable_label: str = "stable",
    api: Iterable[ApiUse] = (),
    servable: int | None = None,
) -> dict[int, list[Use]]:
    """``{version: [reasons]}`` for one model (pure: every input is given).

    ``servable``: the newest version ready in the logic tier (None where no logic
    tier runs yet, as for the graph tier's first config).
    """
    uses: dict[int, list[Use]] = {}

    def add(version: int | None, use: Use) -> None:
        if version is not None and use not in uses.setdefault(version, []):
            uses[version].append(use)

    for role in rollout_roles(rollout, stable_label) if rollout is not None else []:
        label = "" if role.target.isdigit() else f" (label {role.target})"
        add(resolve_target(role.target, labels), Use("rollout", f"{role.role}{label}"))
    for label, version in sorted(labels.items()):
        add(version, Use("label", f"label {label}"))
    for pin in pins:
        why = (
            f"pinned while {pin.reason} waits for it"
            if pin.pending
            else (f"pin by {pin.holder}: {pin.reason}")
        )
        add(pin.version, Use("pin", why))
    for need in api:
        add(need.version, Use("api", need.why))
    add(servable, Use("servable", LAST_SERVABLE))
    return dict(sorted(uses.items()))


def last_servable(
    apis: ApiContext | None,
    model: str,
    allowed: Iterable[int] | None = None,
    stable: int | None = None,
) -> int | None:
    """The version the logic tier serves by default now (None when nobody knows or none).

    That is the ``stable`` label's version when it is ready (as routing prefers
    it), else the newest ready version. ``allowed``: the versions the user's
    policy may serve (a ``specific`` list, the versions of live request APIs); a
    version outside them is never held, so editing models.config back to an
    older version, or retiring an API, still releases the newer one.
    """
    if apis is None or apis.ready is None:
        return None
    try:
        ready = set(apis.ready(model))
    except KeyError:  # a model this logic tier does not serve
        return None
    if allowed is not None:
        ready &= set(allowed)
    if stable is not None and stable in ready:
        return stable
    return max(ready) if ready else None


def servable_among(
    entry: model_server_config_pb2.ModelConfig,
    on_disk: set[int] | None,
    selectable: Iterable[int] | None,
) -> set[int] | None:
    """What ``last_servable`` may hold for ``entry``: its policy's candidates, live APIs'."""
    if on_disk is None:
        return None
    allowed = policy_candidates(entry, on_disk)
    return allowed & set(selectable) if selectable is not None else allowed


def in_use_now(
    engine: Engine,
    models_config: Path | None,
    model: str,
    stable_label: str = "stable",
    apis: ApiContext | None = None,
) -> dict[int, list[Use]]:
    """The versions of ``model`` in use right now, from the shared database and models.config.

    For callers outside the keeper (admin API, ``python -m export versions``):
    reads the model's rollout, its pins, the labels of the user's models.config
    and the APIs its version folders serve (none of the last two when
    ``models_config`` is None or unreadable).
    """
    from logic_service.pinning.models_config import (
        ConfigUnreadable,
        base_dir_of,
        published_versions,
        read_user_config,
    )
    from logic_service.storage.retired_apis import load_retired
    from logic_service.storage.rollout_state import RolloutStore

    labels: dict[str, int] = {}
    needs: tuple[ApiUse, ...] = ()
    allowed: set[int] | None = None
    entry = None
    if models_config is not None:
        try:
            config = read_user_config(models_config).config
        except ConfigUnreadable:
            config = None
        if config is not None:
            entry = next((e for e in config.model_config_list.config if e.name == model), None)
    if entry is not None:
        labels = dict(entry.version_labels)
        folder = base_dir_of(entry.base_path, Path.cwd())
        on_disk = published_versions(folder) if folder is not None else None
        retired = load_retired(engine).get(model, {})
        found = (apis or ApiContext()).needs(entry, folder, on_disk, retired)
        needs = found.uses
        allowed = servable_among(entry, on_disk, found.selectable)
    pins = PinStore(engine).active(model)  # before the rollout: see plan.plan_effective
    record = RolloutStore(engine).get(model)
    return versions_in_use(
        record.spec if record else None,
        labels,
        pins,
        stable_label,
        needs,
        last_servable(apis, model, allowed, labels.get(stable_label)),
    )
