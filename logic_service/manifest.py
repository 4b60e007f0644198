"""Reading a version's manifest (``assets.extra/tierkit.json``, see docs/manifest.md).

Only what the logic tier acts on is modelled; other keys (parity, warmup, files)
are kept but not checked, so export can add fields without breaking readers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST_FORMAT = "tierkit.manifest/1"
MANIFEST_PATH = Path("assets.extra") / "tierkit.json"


class TensorSpec(BaseModel):
    """One signature input or output; ``shape`` is None for unknown rank, -1 for unknown dims."""

    model_config = ConfigDict(extra="allow")

    dtype: str
    shape: list[int] | None = None
    tensor_name: str | None = None


class SignatureSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    method_name: str = "tensorflow/serving/predict"
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    transformer: str
    format: Literal["skops", "pickle"] = "skops"
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    trusted_types: list[str] = Field(default_factory=list)
    signature_input: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: Literal["tierkit.manifest/1"]
    name: str
    version: int
    signatures: dict[str, SignatureSpec]
    input_schema: dict[str, Any] | None = None
    features: FeatureSpec | None = None


class ManifestError(ValueError):
    """The manifest is missing, unreadable or contradicts its directory."""


class ManifestMissing(ManifestError):
    """The version has no manifest: a plain SavedModel that takes tensors directly."""


def read_manifest(version_dir: Path, model: str, version: int) -> Manifest:
    path = version_dir / MANIFEST_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestMissing(f"{path}: no manifest") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable: {exc}") from exc
    if isinstance(raw, dict) and raw.get("format") != MANIFEST_FORMAT:
        raise ManifestError(
            f"{path}: format must be {MANIFEST_FORMAT!r}, got {raw.get('format')!r}"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ManifestError(f"{path}: {problems}") from exc
    if manifest.name != model or manifest.version != version:
        raise ManifestError(
            f"{path}: written for {manifest.name}/{manifest.version}, found in {model}/{version}"
        )
    if manifest.features is not None and manifest.input_schema is None:
        raise ManifestError(f"{path}: features need an input_schema to validate raw records")
    return manifest
