"""Versions a rollout names that cannot serve now, and why: what the operator must be told.

A version can leave after a rollout was set: its folder deleted, a load that
failed, the graph tier restarted. Routing then follows the fallback rule
(``routing/strategies.py``); this module says what is missing so the dashboard
shows a warning, ``/metrics`` counts it (``tierkit_rollout_missing_versions``)
and the keeper records a ``version_missing`` event. Pure over the registry's
view, so every worker tells the same story from what it sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from logic_service.graph.client import VersionStatus
from logic_service.pinning.in_use import resolve_target, rollout_roles
from logic_service.settings.rollout import RolloutSpec

TRANSIENT = ("loading", "unloading")


@dataclass(frozen=True)
class MissingVersion:
    role: str  # "canary candidate"
    target: str  # as written in the spec: "1800000001" or "stable"
    version: int | None  # None: a label nobody defined
    why: str

    @property
    def lasting(self) -> bool:
        """Worth an event and the metric (a version still loading is not)."""
        return not self.why.startswith(TRANSIENT)

    def text(self) -> str:
        named = (
            self.target
            if self.version is None or self.target.isdigit()
            else (f"{self.target} (version {self.version})")
        )
        return f"{self.role} {named}: {self.why}"

    def public(self) -> dict:
        return {
            "role": self.role,
            "target": self.target,
            "version": self.version,
            "why": self.why,
            "lasting": self.lasting,
            "message": self.text(),
        }


def _why(
    version: int,
    graph: Mapping[int, VersionStatus],
    published: set[int] | None,
    refused: Mapping[int, str],
) -> str:
    if published is not None and version not in published:
        return "not published (its version folder is gone)"
    if version in refused:
        return f"refused by the logic tier: {refused[version]}"
    status = graph.get(version)
    if status is None:
        return "not loaded by the graph tier"
    if status.state == "END":
        return f"failed to load: {status.error}" if status.error else "unloaded by the graph tier"
    if status.state in ("START", "LOADING"):
        return "loading in the graph tier"
    if status.state == "UNLOADING":
        return "unloading in the graph tier"
    return "loading its features in the logic tier"


def missing_versions(
    spec: RolloutSpec,
    ready: tuple[int, ...],
    graph: Mapping[int, VersionStatus],
    labels: Mapping[str, int],
    published: set[int] | None,
    refused: Mapping[int, str] | None = None,
    stable_label: str = "stable",
) -> list[MissingVersion]:
    """Each role of ``spec`` whose version is not ready to serve, with the reason."""
    problems: list[MissingVersion] = []
    for role in rollout_roles(spec, stable_label):
        version = resolve_target(role.target, labels)
        if version is None:
            problems.append(
                MissingVersion(role.role, role.target, None, "label not defined in models.config")
            )
        elif version not in ready:
            why = _why(version, graph, published, refused or {})
            problems.append(MissingVersion(role.role, role.target, version, why))
    return problems


def missing_in(registry: object, model: str, spec: RolloutSpec, stable_label: str) -> list:
    """``missing_versions`` from what a ``ModelRegistry`` knows of ``model`` right now."""
    view = registry.version_view(model)  # type: ignore[attr-defined]
    return missing_versions(
        spec, view.ready, view.graph, view.labels, view.published, view.refused, stable_label
    )


def rollout_warnings(registry: object, policy: object, model: str, settings: object) -> list:
    """The dashboard's and ``/metrics``' view: ``missing_in`` for the model's stored rollout."""
    record = policy.get(model)  # type: ignore[attr-defined]
    stable = settings.stable_label  # type: ignore[attr-defined]
    return [m.public() for m in missing_in(registry, model, record.spec, stable)]
