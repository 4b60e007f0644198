"""Reading a version's manifest (``assets.extra/tierkit.json``, see docs/manifest.md).

Only what the logic tier acts on is modelled; other keys (parity, warmup, files)
are kept but not checked, so export can add fields without breaking readers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from export.manifest import saved_model_files
from logic_service.settings.api_versions import API_VERSION_PATTERN, DEFAULT_API_VERSION

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


class CodeSpec(BaseModel):
    """The feature code copied into the version (``export --feature-module``)."""

    model_config = ConfigDict(extra="allow")

    file: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class FeatureSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    # ``module:attr`` imported from the logic tier's installation, or, with ``code``,
    # the attribute of the copied file (``derive``)
    function: str = Field(pattern=r"^([A-Za-z_][\w.]*:)?[A-Za-z_]\w*$")
    code: CodeSpec | None = None
    transformer: str
    format: Literal["skops", "pickle"] = "skops"
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    trusted_types: list[str] = Field(default_factory=list)
    signature_input: str

    @model_validator(mode="after")
    def _function_fits_code(self) -> FeatureSpec:
        if self.code is None and ":" not in self.function:
            raise ValueError("function must be module:attr when no code travels with the version")
        if self.code is not None and ":" in self.function:
            raise ValueError("function must be the name of an attribute of the copied code")
        return self


class CompressionSpec(BaseModel):
    """``export --quantize``: a TF Lite model beside the SavedModel (docs/manifest.md).

    The graph tier serves it instead of the SavedModel when it runs with
    ``--prefer_tflite_model=true``; the logic tier only shows it (dashboard).
    """

    model_config = ConfigDict(extra="allow")

    format: str = "tflite"
    mode: str
    file: str = "model.tflite"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: Literal["tierkit.manifest/1"]
    name: str
    version: int
    signatures: dict[str, SignatureSpec]
    input_schema: dict[str, Any] | None = None
    # The request API (input schema version) this version accepts; manifests written
    # before API versions existed accept v1, the only API there was.
    api_version: str = Field(DEFAULT_API_VERSION, pattern=API_VERSION_PATTERN)
    features: FeatureSpec | None = None
    files: dict[str, str] | None = None
    compression: CompressionSpec | None = None
    # one raw record (export checked it end to end; the logic tier runs it at load)
    example_request: dict[str, Any] | None = None
    _copied_from: int | None = PrivateAttr(default=None)

    @property
    def copied_from(self) -> int | None:
        """The version this manifest was written for, when its directory is a copy of it."""
        return self._copied_from


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
        mismatch = (
            f"{path}: written for {manifest.name}/{manifest.version}, found in {model}/{version}"
        )
        if manifest.name != model:
            raise ManifestError(mismatch)
        manifest = _as_copy(manifest, version_dir, version, mismatch)
    if manifest.features is not None and manifest.input_schema is None:
        raise ManifestError(f"{path}: features need an input_schema to validate raw records")
    return manifest


def _as_copy(manifest: Manifest, version_dir: Path, version: int, mismatch: str) -> Manifest:
    """Accept a version directory copied by hand (``cp -r ctr/7 ctr/8``) if it is one.

    Copying the newest version to the next number is how people re-publish or roll
    forward by hand, and TF Serving loads the copy and unloads the original under
    the ``latest`` policy: refusing it here would leave the model with no version the
    logic tier can serve. The manifest may describe another directory only when that
    directory's SavedModel files are byte for byte the ones it lists, so the feature
    processing it names is the processing this graph was exported with.
    """
    if not manifest.files:
        raise ManifestError(f"{mismatch}; no files list to prove it is a copy")
    found = saved_model_files(version_dir)  # what export lists, computed the same way
    missing = sorted(manifest.files.keys() - found.keys())
    extra = sorted(found.keys() - manifest.files.keys())
    changed = sorted(
        f for f in manifest.files.keys() & found.keys() if manifest.files[f].lower() != found[f]
    )
    if missing or extra or changed:
        problems = [
            f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("not listed", extra), ("changed", changed))
            if names
        ]
        raise ManifestError(f"{mismatch}; its files differ ({'; '.join(problems)})")
    copy = manifest.model_copy(update={"version": version})
    copy._copied_from = manifest.version
    return copy
