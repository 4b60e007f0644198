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

from logic_service.codecs.dtypes import numpy_dtype
from logic_service.inputs.feature_pipeline import ArtifactError, FeaturePipeline
from logic_service.inputs.schema import RecordValidator, SchemaError
from logic_service.inputs.tensor_records import stack_records
from logic_service.manifest import Manifest, ManifestError, SignatureSpec, read_manifest


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
    trusted: Sequence[Path] | None = None,
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
            version_dir / "assets.extra",
            spec,
            numpy_dtype(tensor.dtype),
            allow_pickle,
            model,
            version,
            trusted,
        )
    artifacts = VersionArtifacts(
        model, version, signature_name, signature, validator, features, manifest
    )
    if manifest.example_request is not None:
        check_example(artifacts, manifest.example_request, tensor_width(signature))
    return artifacts


def tensor_width(signature: SignatureSpec) -> int | None:
    """The feature width of a single 2-D input (None when unknown or several inputs)."""
    if len(signature.inputs) != 1:
        return None
    shape = next(iter(signature.inputs.values())).shape
    return shape[1] if shape is not None and len(shape) == 2 and shape[1] >= 0 else None


def check_example(artifacts: VersionArtifacts, example: dict[str, Any], width: int | None) -> None:
    """The parity check at load: the manifest's example record must still run here.

    Export ran it end to end; here it meets this process's schema validator,
    feature code and transformer (and its compiled form). A version that cannot
    turn its own example into a finite matrix of the graph's width would answer
    every request with an error, so it is refused before it is routed to.
    """
    where = f"{artifacts.model}/{artifacts.version}"
    problems = artifacts.validate([example], ["example_request"])
    if problems:
        raise ArtifactError(
            f"{where}: the manifest's example_request fails the input schema here: "
            + "; ".join(problems)
        )
    try:
        matrices = artifacts.inputs([example], ["example_request"])
    except Exception as exc:
        raise ArtifactError(
            f"{where}: the manifest's example_request does not run through the features "
            f"here: {type(exc).__name__}: {exc}"
        ) from exc
    for name, matrix in matrices.items():
        if matrix.dtype.kind in "fc" and not np.all(np.isfinite(matrix)):
            raise ArtifactError(f"{where}: the example_request's {name!r} is not finite here")
        if width is not None and (matrix.ndim != 2 or matrix.shape[1] != width):
            raise ArtifactError(
                f"{where}: the example_request's {name!r} has shape {list(matrix.shape)} "
                f"here; the graph takes [-1, {width}]"
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


def warm_transformer_imports() -> None:
    """Import what loading a skops transformer imports, in the artifact pool, once at start.

    The first version load otherwise pays it after the graph tier is up: the
    local stack measured 3.7 s from "graph tier reachable" to the first
    version's artifacts, most of it these imports, while the graph tier's own
    start (TensorFlow, the model, warmup) had taken 8 s in which the logic
    tier waited idle. A load that starts meanwhile waits on the import lock.
    """
    try:
        import pandas  # noqa: F401
        import skops.io  # noqa: F401
    except ImportError:  # the load that needs them says so, with its version
        pass
