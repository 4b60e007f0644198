"""The version manifest ``assets.extra/tierkit.json`` (see docs/manifest.md).

Written last, inside the temporary version directory, so it describes exactly
the files that get published; the logic tier refuses a version whose files or
feature artifact do not match it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export import TOOL_NAME, __version__
from export.digests import file_sha256

MANIFEST_FORMAT = "tierkit.manifest/1"
MANIFEST_FILE = "tierkit.json"
EXTRA_DIR = "assets.extra"
# The request API (input schema version) a version accepts, ``v`` and a number; the
# logic tier serves each at its own path (/v1/models/..., /v2/models/...).
DEFAULT_API_VERSION = "v1"
API_VERSION_PATTERN = r"^v[1-9][0-9]{0,3}$"


def saved_model_files(version_dir: Path) -> dict[str, str]:
    """sha256 of every SavedModel file, ``assets.extra/`` excluded (it is ours)."""
    hashes: dict[str, str] = {}
    for root, dirs, files in os.walk(version_dir):
        relative_root = Path(root).relative_to(version_dir)
        if relative_root == Path("."):
            dirs[:] = [d for d in dirs if d != EXTRA_DIR]
        dirs.sort()
        for name in sorted(files):
            hashes[(relative_root / name).as_posix()] = file_sha256(Path(root) / name)
    return hashes


def build_manifest(
    *,
    name: str,
    version: int,
    source: dict[str, Any],
    signatures: dict[str, Any],
    input_schema: dict[str, Any] | None,
    features: dict[str, Any] | None,
    files: dict[str, str],
    parity: dict[str, Any],
    warmup_records: int,
    api_version: str = DEFAULT_API_VERSION,
    compression: dict[str, Any] | None = None,
    example_request: dict[str, Any] | None = None,
    end_to_end: dict[str, Any] | None = None,
) -> dict[str, Any]:
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": {"name": TOOL_NAME, "version": __version__},
        "source": source,
        "signatures": signatures,
        "input_schema": input_schema,
        "api_version": api_version,
        "features": features,
        "files": files,
        "parity": parity,
        "warmup": {"records": warmup_records},
    }
    if example_request is not None:  # one raw record: docs, OpenAPI, the load-time check
        manifest["example_request"] = example_request
    if end_to_end is not None:  # what the example scored at export, raw record to output
        manifest["parity"] = {**parity, "end_to_end": end_to_end}
    if compression is not None:  # --quantize: the model.tflite beside the SavedModel
        manifest["compression"] = compression
    return manifest


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> Path:
    path = version_dir / EXTRA_DIR / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path
