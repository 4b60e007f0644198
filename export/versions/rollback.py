"""``versions NAME rollback [--to V]``: the ``stable`` label back one version, both kept loaded.

The logic tier routes by the ``stable`` label (docs/rollouts.md), so moving it
in models.config is the rollback; the version it leaves stays loaded for a
roll-forward. In order, each step undone when a later one fails, so a refused
rollback changes nothing:

1. refuse while a rollout other than ``stable`` routes the model (its own
   ``rollout rollback`` applies), when the logic tier does not pin versions,
   when there is no previous version of the same request API, or ``--to``
   names one that is not published, is the current one or serves another API;
2. pin the target through the admin API: the keeper loads it and the call
   returns once it serves, or answers 409 with its load error. TF Serving moves
   an existing label only onto a loaded version, so it is loaded first;
3. pin the current version (the label leaves it; the pin keeps it loaded);
4. write ``stable=<target>`` into models.config (export's editor, atomic);
5. wait, bounded, until the logic tier routes by it: the admin API's
   ``routing_labels`` (the graph tier's labels) put the label on the target;
6. drop the target's pin: the label holds it now.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.model_config import ModelEntryChange, apply_change, read_config, write_config
from export.versions.disk import VersionOnDisk
from export.versions.stack import (
    AdminClient,
    StackRefused,
    StackUnavailable,
    StackView,
    wait_for,
)

REASON = "versions rollback"


@dataclass
class RollbackResult:
    model: str
    label: str
    current: int
    target: int
    loaded: list[int] = field(default_factory=list)
    kept_pinned: list[int] = field(default_factory=list)
    took_s: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "label": self.label,
            "from": self.current,
            "to": self.target,
            "loaded": self.loaded,
            "pinned": self.kept_pinned,
            "took_s": round(self.took_s, 2),
        }


def current_version(label: str, config_labels: dict[str, int], stack: StackView) -> int:
    """The version the label names, else the one serving now (the newest ready)."""
    if label in config_labels:
        return config_labels[label]
    if label in stack.labels:
        return stack.labels[label]
    if not stack.ready:
        raise ExportError("rollback: no version of the model is ready, so none to roll back from")
    return max(stack.ready)


def choose_target(current: int, on_disk: list[VersionOnDisk], to: int | None) -> VersionOnDisk:
    """The previous published version of the current one's API, or ``--to``, checked."""
    by_version = {v.version: v for v in on_disk}
    api = by_version[current].api_version if current in by_version else None
    published = sorted(by_version)
    if to is not None:
        if to not in by_version:
            raise ExportError(f"--to {to}: not a published version (published: {published})")
        if to == current:
            raise ExportError(f"--to {to}: that is the current version already")
        if by_version[to].api_version != api:
            raise ExportError(
                f"--to {to}: accepts API {by_version[to].api_version}, the current version "
                f"{current} accepts {api}; a rollback stays within one request API"
            )
        return by_version[to]
    older = [v for v in published if v < current and by_version[v].api_version == api]
    if not older:
        raise ExportError(
            f"rollback: no version before {current} of API {api} is published "
            f"(published: {published}); nothing to roll back to"
        )
    return by_version[older[-1]]


def _write_bytes(path: Path, text: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as stream:
        stream.write(text)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)


@dataclass
class _Undo:
    """What the rollback changed so far, to put back if a later step fails."""

    client: AdminClient
    model: str
    pinned: list[int] = field(default_factory=list)
    config: Path | None = None
    before: bytes = b""
    written: bytes = b""

    def run(self) -> list[str]:
        problems: list[str] = []
        if self.config is not None:
            try:
                if self.config.read_bytes() == self.written:  # nobody edited it since
                    _write_bytes(self.config, self.before)
            except OSError as exc:
                problems.append(f"{self.config} not restored: {exc}")
        for version in self.pinned:
            try:
                self.client.unpin(self.model, version)
            except Exception as exc:  # report, keep undoing the rest
                problems.append(f"pin of {version} not released: {exc}")
        return problems


def rollback(
    client: AdminClient,
    model: str,
    config: Path,
    on_disk: list[VersionOnDisk],
    label: str,
    to: int | None,
    wait_s: float,
) -> RollbackResult:
    started = time.monotonic()
    stack = client.versions(model)
    if not stack.pinning:
        raise ExportError(
            f"rollback: the logic tier at {client.url} does not pin versions "
            "(graph_config.effective_file is unset), so it cannot keep both loaded"
        )
    strategy = client.rollout(model).get("spec", {}).get("strategy", "stable")
    if strategy != "stable":
        raise ExportError(
            f"rollback: model {model} is in a {strategy} rollout, which routes by its own rule, "
            f"not by the {label!r} label; use `python -m logic_service rollout rollback {model}` "
            f'or end it with --spec \'{{"strategy": "stable"}}\' first'
        )
    models_config = read_config(config)
    entry = next((e for e in models_config.model_config_list.config if e.name == model), None)
    if entry is None:
        raise ExportError(f"--config {config}: has no entry for model {model!r}")
    current = current_version(label, dict(entry.version_labels), stack)
    target = choose_target(current, on_disk, to).version
    result = RollbackResult(model, label, current, target)
    undo = _Undo(client, model)
    held = stack.operator_pins()
    try:
        for version in (target, current):  # the target loads first; both stay
            if version not in held:
                client.pin(model, version, f"{REASON} {current} -> {target}")
                undo.pinned.append(version)
        undo.config, undo.before = config, config.read_bytes()
        apply_change(models_config, ModelEntryChange(model, labels={label: target}), "")
        write_config(config, models_config)
        undo.written = config.read_bytes()
        deadline = time.monotonic() + wait_s
        routed = wait_for(lambda: client.serving_labels(model).get(label) == target, deadline)
        if not routed:
            raise ExportError(
                f"rollback: the logic tier did not route by {label}={target} within "
                f"{wait_s:g} s (graph tier labels: {client.serving_labels(model) or 'none'}); "
                f"does it read {config}?"
            )
    except (ExportError, StackRefused, StackUnavailable, OSError) as exc:
        problems = undo.run()
        text = str(exc) if str(exc).startswith("rollback:") else f"rollback: {exc}"
        if problems:
            text += "; undo incomplete: " + "; ".join(problems)
        elif not text.endswith("nothing changed"):
            text += "; nothing changed"
        raise ExportError(text) from exc
    if target in undo.pinned:  # the label holds it now
        client.unpin(model, target)
    result.kept_pinned = sorted(v for v in undo.pinned if v != target)
    result.loaded = client.versions(model).loaded
    result.took_s = time.monotonic() - started
    return result


def render(result: RollbackResult) -> str:
    lines = [
        f"model {result.model}: {result.label} {result.current} -> {result.target} "
        f"in {result.took_s:.1f} s; loaded {result.loaded}"
    ]
    for version in result.kept_pinned:
        lines.append(
            f"  {version} stays loaded (operator pin); release it with "
            f"`python -m logic_service rollout unpin {result.model} {version}`"
        )
    return "\n".join(lines)
