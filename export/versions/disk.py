"""What only the model repository knows about each version: size, creation, parity, API.

Read from the version folders and their manifests (``assets.extra/tierkit.json``,
docs/manifest.md), never from a server: this is the half of ``python -m export
versions`` that works with the stack down. A folder without a manifest (a
SavedModel copied in by hand) still lists, with what the folder itself says.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export.manifest import DEFAULT_API_VERSION, EXTRA_DIR, MANIFEST_FILE, MANIFEST_FORMAT

PRUNE_PREFIX = ".tmp-prune-"


@dataclass(frozen=True)
class VersionOnDisk:
    """One published version folder and its manifest's facts."""

    version: int
    path: Path
    size_bytes: int
    created: str  # ISO 8601, UTC
    created_from: str  # "manifest" or "folder" (no manifest: the folder's mtime)
    parity: str  # "ok (max abs diff 2.98e-08 <= 1e-05, 8 samples)", "not checked", ...
    api_version: str | None  # None: a manifest the logic tier would refuse
    problem: str | None = None  # why the manifest could not be read

    def public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "created": self.created,
            "created_from": self.created_from,
            "parity": self.parity,
            "api_version": self.api_version,
            "manifest_problem": self.problem,
        }


def version_folders(model_dir: Path) -> dict[int, Path]:
    """Integer-named folders, as both tiers find versions (``.tmp-*`` and files are ignored)."""
    found: dict[int, Path] = {}
    try:
        entries = list(os.scandir(model_dir))
    except FileNotFoundError:
        return {}
    for entry in entries:
        if entry.name.isdigit() and entry.name.isascii() and entry.is_dir(follow_symlinks=False):
            found[int(entry.name)] = Path(entry.path)
    return dict(sorted(found.items()))


def leftover_prunes(model_dir: Path) -> list[Path]:
    """Folders an interrupted prune renamed away and did not finish removing."""
    try:
        return sorted(
            Path(e.path)
            for e in os.scandir(model_dir)
            if e.name.startswith(PRUNE_PREFIX) and e.is_dir(follow_symlinks=False)
        )
    except FileNotFoundError:
        return []


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parity(value: Any) -> str:
    if not isinstance(value, dict):
        return "not checked"
    diff, atol, samples = value.get("max_abs_diff"), value.get("atol"), value.get("samples")
    if not isinstance(diff, int | float) or not isinstance(atol, int | float):
        return "recorded"
    ok = diff <= atol
    rows = f", {samples} samples" if isinstance(samples, int) else ""
    verdict, sign = ("ok", "<=") if ok else ("FAILED", ">")
    return f"{verdict} (max abs diff {diff:.3g} {sign} {atol:g}{rows})"


def read_version(version: int, path: Path) -> VersionOnDisk:
    """The facts of one version folder (never raises for a bad manifest: it says why)."""
    size = folder_size(path)
    manifest_path = path / EXTRA_DIR / MANIFEST_FILE
    folder_time = _iso(path.stat().st_mtime)
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return VersionOnDisk(
            version, path, size, folder_time, "folder", "not checked", DEFAULT_API_VERSION
        )
    except (OSError, ValueError) as exc:
        problem = f"{manifest_path}: unreadable ({exc})"
        return VersionOnDisk(version, path, size, folder_time, "folder", "?", None, problem)
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        problem = f"{manifest_path}: not a {MANIFEST_FORMAT} manifest"
        return VersionOnDisk(version, path, size, folder_time, "folder", "?", None, problem)
    created = raw.get("created")
    api = raw.get("api_version", DEFAULT_API_VERSION)
    return VersionOnDisk(
        version,
        path,
        size,
        created if isinstance(created, str) else folder_time,
        "manifest" if isinstance(created, str) else "folder",
        _parity(raw.get("parity")),
        api if isinstance(api, str) else None,
    )


def scan(model_dir: Path) -> list[VersionOnDisk]:
    """Every published version of the model, oldest first."""
    return [read_version(v, p) for v, p in version_folders(model_dir).items()]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
