"""Finding model versions on disk (FileSystemStoragePathSource).

A version is an integer-named directory directly under the model's base path.
Everything else is ignored on purpose: exporters publish by writing
``.tmp-<version>-<pid>/`` and renaming it, so a half-written version is never
seen. A missing base path is reported (and logged by the caller), never fatal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scan:
    """The result of one look at a base path."""

    versions: dict[int, Path]
    error: str | None = None


def scan_versions(model_name: str, base_path: str) -> Scan:
    """List ``{version: path}`` under ``base_path``; ``error`` says why nothing was found."""
    try:
        entries = list(os.scandir(base_path))
    except FileNotFoundError:
        return Scan({}, f"Could not find base path {base_path} for servable {model_name}")
    except OSError as exc:
        return Scan({}, f"Cannot list base path {base_path} for servable {model_name}: {exc}")
    versions: dict[int, Path] = {}
    for entry in entries:
        name = entry.name
        if not name.isdigit() or not name.isascii():
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        versions[int(name)] = Path(entry.path)
    if not versions:
        return Scan({}, f"No versions of servable {model_name} found under base path {base_path}")
    return Scan(versions)
