"""Everything the logic tier needs to serve one model version, loaded once.

Loading reads files and may import modules and unpack a transformer: slow,
blocking work that the model registry runs in a thread, never on a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logic_service.feature_pipeline import ArtifactError, FeaturePipeline
from logic_service.input_schema import RecordValidator, SchemaError
from logic_service.manifest import Manifest, ManifestError, SignatureSpec, read_manifest
from logic_service.tensor_dtypes import numpy_dtype
from logic_service.tensor_records import stack_records


@dataclass(frozen=True)
class VersionArtifacts:
    model: str
    version: int
    signature_name: str
    signature: SignatureSpec
    validator: RecordValidator | None
    features: FeaturePipeline | None
    manifest: Manifest | None

    @property
    def quantization(self) -> str | None:
        """The ``--quantize`` mode of the model.tflite beside the SavedModel, if any."""
        compression = self.manifest.compression if self.manifest is not None else None
        return compression.mode if compression is not None else None

    @property
    def output_names(self) -> list[str]:
        return list(self.signature.outputs)

    def validate(self, records: Sequence[Any], paths: Sequence[str]) -> list[str]:
        if self.validator is None:
            return []
        problems: list[str] = []
        for record, path in zip(records, paths, strict=True):
            problems.extend(self.validator.errors(record, path))
        return problems

    def inputs(self, records: Sequence[Any], paths: Sequence[str]) -> dict[str, np.ndarray]:
        """The graph request's named tensors for these (already validated) records."""
        if self.features is None:
            return stack_records(records, paths, self.signature.inputs)
        rows = self.features.derive(records, paths)
        return {self.features.input_name: self.features.transform(rows)}


def pick_signature(
    signatures: Mapping[str, SignatureSpec], wanted: str, where: str
) -> SignatureSpec:
    if wanted in signatures:
        return signatures[wanted]
    raise ArtifactError(
        f"{where}: no signature {wanted!r} (has: {', '.join(sorted(signatures)) or 'none'})"
    )


def load_version(
    model: str,
    version: int,
    version_dir: Path,
    signature_name: str,
    allow_pickle: bool = False,
) -> VersionArtifacts:
    """Read and check the manifest, compile its schema, load its feature artifacts.

    Raises ManifestError (no/bad manifest), SchemaError or ArtifactError: the
    registry logs the reason and keeps routing to versions that did load.
    """
    manifest = read_manifest(version_dir, model, version)
    where = f"{model}/{version}"
    signature = pick_signature(manifest.signatures, signature_name, where)
    try:
        validator = RecordValidator(manifest.input_schema) if manifest.input_schema else None
    except SchemaError as exc:
        raise ArtifactError(f"{where}: {exc}") from exc
    features = None
    if manifest.features is not None:
        spec = manifest.features
        tensor = signature.inputs.get(spec.signature_input)
        if tensor is None:
            raise ArtifactError(
                f"{where}: features.signature_input {spec.signature_input!r} is not an input of "
                f"signature {signature_name!r}"
            )
        if len(signature.inputs) != 1:
            raise ArtifactError(
                f"{where}: signature {signature_name!r} has inputs {sorted(signature.inputs)}; "
                "feature processing fills exactly one"
            )
        features = FeaturePipeline.load(
            version_dir / "assets.extra", spec, numpy_dtype(tensor.dtype), allow_pickle
        )
    return VersionArtifacts(
        model, version, signature_name, signature, validator, features, manifest
    )


def tensor_only_version(
    model: str, version: int, signature_name: str, signature: SignatureSpec
) -> VersionArtifacts:
    """A version without a manifest: records are tensors, shapes and dtypes from the graph tier."""
    return VersionArtifacts(model, version, signature_name, signature, None, None, None)


__all__ = [
    "ArtifactError",
    "ManifestError",
    "SchemaError",
    "VersionArtifacts",
    "load_version",
    "tensor_only_version",
]
