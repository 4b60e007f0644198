"""Before a rollout (or a pin) is stored: every version it names exists, and is loaded.

- a version number that is not published (no folder in the model repository),
  or a label models.config does not define: 422 naming it, with the published
  and loaded versions;
- a published version the graph tier has not loaded (the user's policy let it
  go, say ``latest { num_versions: 1 }`` after a newer one was published): a
  pending pin makes the keeper load it, and the call waits (``pin_wait_s``)
  until it is AVAILABLE and its features are loaded here; if it fails to load,
  409 naming it, its load error and what is loaded, and nothing changes;
- a canary without a baseline and without a stable label gets the version
  serving now written in as its baseline, so the rollout never depends on
  which version happens to be newest later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Engine

from logic_service.errors import ApiError
from logic_service.graph.client import GraphError
from logic_service.pinning.in_use import resolve_target, rollout_roles
from logic_service.pinning.models_config import ConfigUnreadable, labels_of, read_user_config
from logic_service.pinning.pins import PENDING_PREFIX, PinStore
from logic_service.routing.version_policy import NoVersion, StableOrNewest
from logic_service.settings import LogicSettings
from logic_service.settings.rollout import RolloutSpec
from logic_service.versions.registry import ModelRegistry


class TierState(Protocol):
    """What pinning reads of the running tier (``services.Services`` has it all)."""

    @property
    def settings(self) -> LogicSettings: ...

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def database(self) -> Engine: ...


POLL_S = 0.25
PENDING_GRACE_S = 30.0  # a pending pin outlives its wait by this much, then expires


@dataclass(frozen=True)
class Versions:
    """What the caller is told when a version cannot be used."""

    published: list[int]
    loaded: list[int]

    def text(self) -> str:
        return f"published: {self.published or 'none'}; loaded: {self.loaded or 'none'}"


def user_labels(state: TierState, model: str) -> dict[str, int]:
    """Labels of ``model``: the graph tier's, and models.config's where the keeper reads it."""
    settings = state.settings
    labels = dict(state.registry.version_view(model).labels)
    if settings.graph_config.effective_file is None:
        return labels  # models.config may not even be the graph tier's file then
    try:
        user = read_user_config(settings.graph_config.models_config)
    except ConfigUnreadable:
        return labels
    return labels | labels_of(user.config, model)


async def loaded_versions(state: TierState, model: str) -> list[int]:
    registry = state.registry
    try:
        statuses = await registry.client.model_status(model, 5.0)
    except GraphError:
        return sorted(
            v for v, s in registry.version_view(model).graph.items() if s.state == "AVAILABLE"
        )
    return sorted(s.version for s in statuses if s.state == "AVAILABLE")


def with_explicit_baseline(state: TierState, model: str, spec: RolloutSpec) -> RolloutSpec:
    """A canary without a baseline: the stable label if defined, else the version serving now."""
    if spec.strategy != "canary" or spec.baseline:
        return spec
    stable = state.settings.stable_label
    if stable in user_labels(state, model):
        return spec
    try:
        serving = StableOrNewest(stable).choose(state.registry.routable(model))
    except NoVersion as exc:
        raise ApiError(
            422,
            f"baseline: model {model} has no {stable!r} label and no version serving to "
            "default to; name the baseline",
            "invalid_input",
        ) from exc
    return spec.model_copy(update={"baseline": str(serving)})


async def versions_named(state: TierState, model: str, spec: RolloutSpec) -> set[int]:
    """Every version ``spec`` names, checked to be published (422 naming the ones that are not)."""
    registry = state.registry
    labels = user_labels(state, model)
    for label in sorted(spec.label_targets() - set(labels)):  # not routed to yet: ask
        try:
            found = await registry.client.resolve_label(model, label, 5.0)
        except GraphError:
            found = None
        if found is not None:
            labels[label] = found
    published = sorted(registry.published_versions(model))
    problems: list[str] = []
    versions: set[int] = set()
    stable = state.settings.stable_label
    for role in rollout_roles(spec, stable):
        version = resolve_target(role.target, labels)
        if version is None:
            problems.append(
                f"{role.role}: label {role.target!r} is not defined for model {model} "
                f"(labels: {', '.join(f'{k}={v}' for k, v in sorted(labels.items())) or 'none'})"
            )
        elif version not in published:
            problems.append(f"{role.role}: version {version} of model {model} is not published")
        else:
            versions.add(version)
    if problems:
        known = Versions(published, await loaded_versions(state, model))
        raise ApiError(422, f"{'; '.join(problems)} ({known.text()})", "version_not_published")
    return versions


async def ensure_loaded(
    state: TierState, model: str, versions: set[int], holder: str, reason: str
) -> None:
    """Pin ``versions`` for ``holder`` and wait until every one of them serves here.

    The caller drops ``holder``'s pins once what holds the versions for good
    (the stored rollout, an operator pin) is written. Raises 409 (and drops the
    pins) when one fails to load, does not load within
    ``graph_config.pin_wait_s``, or is not loaded while pinning is off.
    """
    settings = state.settings
    registry = state.registry
    config = settings.graph_config
    missing = versions - set(registry.routable(model).ready_versions)
    if config.effective_file is None:
        if not missing:
            return
        loaded = await loaded_versions(state, model)
        not_loaded = sorted(missing - set(loaded))
        if not_loaded:
            known = Versions(sorted(registry.published_versions(model)), loaded)
            raise ApiError(
                409,
                f"version {', '.join(map(str, not_loaded))} of model {model} is published but "
                "not loaded by the graph tier, and this logic tier does not pin versions "
                f"(graph_config.effective_file is unset) ({known.text()})",
                "version_not_loaded",
            )
    pins = PinStore(state.database)
    deadline = time.monotonic() + config.pin_wait_s
    if config.effective_file is not None:
        # All of them, loaded or not: the user's policy may let one go before the keeper
        # sees the stored rollout.
        expires = time.time() + config.pin_wait_s + PENDING_GRACE_S
        await asyncio.to_thread(pins.add, model, versions, holder, reason, expires)
    if not missing:
        return
    try:
        await _wait(state, model, missing, deadline, config.pin_wait_s)
    except BaseException:
        await asyncio.to_thread(pins.remove, model, None, holder)
        raise


async def _wait(
    state: TierState, model: str, versions: set[int], deadline: float, limit: float
) -> None:
    registry = state.registry
    while True:
        try:
            statuses = {s.version: s for s in await registry.client.model_status(model, 5.0)}
        except GraphError:
            statuses = {}
        failed = {
            v: statuses[v].error
            for v in sorted(versions)
            if v in statuses and statuses[v].state == "END" and statuses[v].error
        }
        refused = registry.version_view(model).refused
        failed |= {v: f"logic tier: {refused[v]}" for v in sorted(versions) if v in refused}
        loaded = sorted(s.version for s in statuses.values() if s.state == "AVAILABLE")
        known = Versions(sorted(registry.published_versions(model)), loaded)
        if failed:
            named = "; ".join(
                f"version {v} of model {model} failed to load: {e}" for v, e in failed.items()
            )
            raise ApiError(409, f"{named} ({known.text()}); nothing changed", "version_load_failed")
        if versions <= set(loaded):
            await registry.refresh(model, seen_at=time.monotonic())
            if versions <= set(registry.routable(model).ready_versions):
                return
        if time.monotonic() > deadline:
            states = ", ".join(
                f"{v}: {statuses[v].state if v in statuses else 'not known'}"
                for v in sorted(versions)
            )
            raise ApiError(
                409,
                f"version {', '.join(map(str, sorted(versions)))} of model {model} did not load "
                f"within {limit:.0f} s (graph tier: {states}; {known.text()}); nothing changed",
                "version_not_loaded",
            )
        await asyncio.sleep(POLL_S)


def pending_holder() -> str:
    return f"{PENDING_PREFIX}{uuid.uuid4().hex[:12]}"
