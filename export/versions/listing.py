"""``python -m export versions NAME``: one row per version, from the disk and from the stack.

The disk says size, creation, parity and API (``disk``); models.config says the
labels; the logic tier's admin API says what is loaded, ready and in use, and
why (rollout roles, labels, pins, live APIs: ``stack``). When the stack cannot
be asked, the listing still shows the disk's half and says the rest is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.versions.disk import VersionOnDisk, human_size, scan
from export.versions.stack import AdminClient, StackUnavailable, StackView


@dataclass(frozen=True)
class ModelVersions:
    """Everything ``versions`` knows about one model."""

    model: str
    model_dir: Path
    on_disk: list[VersionOnDisk]
    config_labels: dict[str, int]
    policy: str
    url: str
    stack: StackView | None
    stack_problem: str | None

    def labels_of(self, version: int) -> list[str]:
        labels = dict(self.stack.labels) if self.stack is not None else {}
        labels.update(self.config_labels)
        return sorted(name for name, v in labels.items() if v == version)

    def state_of(self, version: int) -> str:
        if self.stack is None:
            return "unknown"
        if version in self.stack.ready:
            return "loaded, ready"
        if version in self.stack.loaded:
            return "loaded"
        return "on disk"

    def uses_of(self, version: int) -> list[dict[str, str]]:
        return list(self.stack.in_use.get(version, [])) if self.stack is not None else []

    def rollout_roles(self, version: int) -> list[str]:
        return [u["why"] for u in self.uses_of(version) if u.get("kind") == "rollout"]

    def public(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_dir": str(self.model_dir),
            "policy": self.policy,
            "stack": {
                "url": self.url,
                "known": self.stack is not None,
                "problem": self.stack_problem,
            },
            "versions": [
                {
                    **v.public(),
                    "state": self.state_of(v.version),
                    "loaded": None if self.stack is None else v.version in self.stack.loaded,
                    "ready": None if self.stack is None else v.version in self.stack.ready,
                    "labels": self.labels_of(v.version),
                    "rollout_roles": self.rollout_roles(v.version),
                    "in_use": self.uses_of(v.version),
                }
                for v in reversed(self.on_disk)
            ],
        }


def gather(
    model: str,
    model_dir: Path,
    config_labels: dict[str, int],
    policy: str,
    client: AdminClient,
) -> ModelVersions:
    """The disk's facts, and the stack's if it answers (its problem otherwise)."""
    on_disk = scan(model_dir)
    try:
        stack, problem = client.versions(model), None
    except StackUnavailable as exc:
        stack, problem = None, str(exc)
    return ModelVersions(
        model, model_dir, on_disk, config_labels, policy, client.url, stack, problem
    )


def render(found: ModelVersions) -> str:
    """The table a person reads; newest version first."""
    stack = (
        f"stack {found.url}" if found.stack is not None else f"stack unknown: {found.stack_problem}"
    )
    lines = [f"model {found.model} in {found.model_dir} ({found.policy}; {stack})"]
    if not found.on_disk:
        lines.append("  no published version")
        return "\n".join(lines)
    rows = [("VERSION", "STATE", "LABELS", "API", "SIZE", "CREATED", "PARITY", "IN USE")]
    for v in reversed(found.on_disk):
        uses = "; ".join(u["why"] for u in found.uses_of(v.version))
        rows.append(
            (
                str(v.version),
                found.state_of(v.version),
                ",".join(found.labels_of(v.version)) or "-",
                v.api_version or "?",
                human_size(v.size_bytes),
                v.created + ("*" if v.created_from == "folder" else ""),
                v.parity,
                uses or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    if any(v.created_from == "folder" for v in found.on_disk):
        lines.append("  * no manifest date: the folder's modification time")
    for v in found.on_disk:
        if v.problem:
            lines.append(f"  version {v.version}: {v.problem}")
    return "\n".join(lines)
