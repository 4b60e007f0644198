"""``versions NAME prune --keep N``: delete old version folders, never one something needs.

A version stays when it is one of the N newest, is loaded or ready in the graph
tier, is labelled (models.config or the graph tier), is in use by a rollout, a
pin or a live request API (the logic tier's admin API says which, and why), or
is the newest version of its API on disk. What the stack knows is required:
without an answer from the admin API prune refuses, unless the operator says
the stack is down (``--stack-down``), in which case only the labels of
models.config and the disk's own facts protect versions, beyond ``--keep``.

Deleting is atomic per version: the folder is renamed to ``.tmp-prune-<v>-<pid>``
(a name neither tier loads, like export's ``.tmp-*``) and only then removed, so
no server ever sees a half-deleted version. The stack is asked again right
before the first rename; a version that became needed meanwhile is kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.versions.disk import PRUNE_PREFIX, VersionOnDisk, leftover_prunes
from export.versions.stack import StackView


@dataclass(frozen=True)
class PrunePlan:
    model_dir: Path
    keep: dict[int, list[str]]  # version -> why it stays
    remove: list[int]
    basis: str  # what "in use" was learned from


@dataclass
class PruneResult:
    plan: PrunePlan
    removed: list[int] = field(default_factory=list)
    spared: dict[int, str] = field(default_factory=dict)  # needed since the plan was made
    leftovers: list[str] = field(default_factory=list)  # .tmp-prune-* removed (or not)
    dry_run: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.plan.model_dir),
            "basis": self.plan.basis,
            "dry_run": self.dry_run,
            "removed": self.removed if not self.dry_run else [],
            "would_remove": self.plan.remove if self.dry_run else [],
            "kept": [{"version": v, "why": why} for v, why in sorted(self.plan.keep.items())],
            "spared": [{"version": v, "why": why} for v, why in sorted(self.spared.items())],
            "leftovers": self.leftovers,
        }


def needed_by_stack(stack: StackView) -> dict[int, list[str]]:
    """What the running stack needs, with its reasons."""
    needs: dict[int, list[str]] = {}
    for version in stack.loaded:
        needs.setdefault(version, []).append("loaded")
    for version in stack.ready:
        if version not in stack.loaded:
            needs.setdefault(version, []).append("ready")
    for label, version in sorted(stack.labels.items()):
        needs.setdefault(version, []).append(f"label {label}")
    for version, uses in stack.in_use.items():
        for use in uses:
            needs.setdefault(version, []).append(f"in use: {use['why']}")
    return needs


def plan_prune(
    model_dir: Path,
    on_disk: list[VersionOnDisk],
    keep_newest: int,
    config_labels: Mapping[str, int],
    stack: StackView | None,
    basis: str,
) -> PrunePlan:
    """Which versions stay (and why) and which go; pure."""
    keep: dict[int, list[str]] = {}

    def hold(version: int, why: str) -> None:
        if why not in keep.setdefault(version, []):
            keep[version].append(why)

    newest_first = sorted((v.version for v in on_disk), reverse=True)
    newest = f"one of the {keep_newest} newest" if keep_newest > 1 else "the newest"
    for version in newest_first[:keep_newest]:
        hold(version, newest)
    for label, version in sorted(config_labels.items()):
        hold(version, f"label {label} (models.config)")
    newest_of_api: dict[str, int] = {}
    for v in on_disk:
        if v.api_version is not None and v.version > newest_of_api.get(v.api_version, -1):
            newest_of_api[v.api_version] = v.version
    for api, version in sorted(newest_of_api.items()):
        hold(version, f"newest version of api {api} on disk")
    if stack is not None:
        for version, reasons in needed_by_stack(stack).items():
            for why in reasons:
                hold(version, why)
    published = {v.version for v in on_disk}
    keep = {v: why for v, why in sorted(keep.items()) if v in published}
    remove = sorted(published - set(keep))
    return PrunePlan(model_dir, keep, remove, basis)


def check_same_repository(on_disk: list[VersionOnDisk], stack: StackView, url: str) -> None:
    """Refuse when the logic tier sees other folders than these: it serves another repository."""
    here = sorted(v.version for v in on_disk)
    there = sorted(stack.published)
    if here != there:
        raise ExportError(
            f"the logic tier at {url} sees published versions {there}, this repository has "
            f"{here}: is --repo the folder that stack serves? (nothing removed)"
        )


def execute(
    plan: PrunePlan, still_needed: Callable[[], dict[int, list[str]]] | None
) -> PruneResult:
    """Remove the planned versions, each by rename then delete; see the module docstring.

    ``still_needed`` asks the stack again just before the first rename (None with
    ``--stack-down``); it raises when the stack cannot answer, and then nothing
    is removed.
    """
    result = PruneResult(plan)
    needed = still_needed() if still_needed is not None and plan.remove else {}
    for leftover in leftover_prunes(plan.model_dir):
        shutil.rmtree(leftover, ignore_errors=True)
        state = "removed" if not leftover.exists() else "could not be removed"
        result.leftovers.append(f"{leftover.name} ({state}; left by an interrupted prune)")
    for version in plan.remove:
        if version in needed:
            result.spared[version] = "; ".join(needed[version])
            continue
        source = plan.model_dir / str(version)
        doomed = plan.model_dir / f"{PRUNE_PREFIX}{version}-{os.getpid()}"
        try:
            os.rename(source, doomed)
        except OSError as exc:
            done = f"removed {result.removed}" if result.removed else "nothing removed"
            raise ExportError(
                f"cannot remove version {version} ({source}): {exc.strerror or exc}; {done}, "
                f"every other version untouched"
            ) from exc
        shutil.rmtree(doomed, ignore_errors=True)
        if doomed.exists():
            result.leftovers.append(f"{doomed.name} (could not be removed; no server loads it)")
        result.removed.append(version)
    return result


def render(result: PruneResult) -> str:
    plan = result.plan
    lines = [f"prune {plan.model_dir} ({plan.basis})"]
    for version, why in sorted(plan.keep.items(), reverse=True):
        lines.append(f"  keep    {version}: {'; '.join(why)}")
    for version, why in sorted(result.spared.items(), reverse=True):
        lines.append(f"  keep    {version}: needed since the plan was made: {why}")
    verb = "would remove" if result.dry_run else "removed"
    gone = plan.remove if result.dry_run else result.removed
    for version in sorted(gone, reverse=True):
        lines.append(f"  {verb} {version}")
    if not gone:
        lines.append(f"  nothing to remove beyond the {len(plan.keep)} versions kept")
    for leftover in result.leftovers:
        lines.append(f"  leftover {leftover}")
    return "\n".join(lines)
