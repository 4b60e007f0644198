"""A version's feature processing: raw records -> the float matrix its graph expects.

Two parts travel with every version (see docs/manifest.md): a Python function
deriving named features from one raw record (the version's own copy of the
feature code, ``feature_code``, or an import path of the logic tier's
installation), and a fitted transformer file in ``assets.extra/``. The
transformer is only deserialised after its bytes match the manifest's sha256,
and with skops trusting no more than the manifest's ``trusted_types``: a model
repository is a shared directory, and a swapped file must not get code
execution in the logic tier. Code and pickles also need the version to sit in
a trusted repository (``features.trusted_repositories``).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from logic_service.inputs.compiled_transformer import CompiledTransformer, compile_transformer
from logic_service.inputs.feature_code import UntrustedArtifact, check_trusted, load_code
from logic_service.manifest import FeatureSpec

log = logging.getLogger(__name__)

FeatureFunction = Callable[[Mapping[str, Any]], dict[str, Any]]


class ArtifactError(ValueError):
    """A feature artifact cannot be used (hash mismatch, untrusted type, import failure)."""


class RecordsRejected(ValueError):
    """Records that passed the schema but could not become tensors; one line each.

    The feature function refused them, or (``tensor_records.TensorRecordError``)
    they are not shaped like the signature's inputs.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def import_function(path: str) -> FeatureFunction:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(f"feature function {path}: cannot import: {exc}") from exc
    if not callable(function):
        raise ArtifactError(f"feature function {path}: is not callable")
    return function


def code_function(
    directory: Path, spec: FeatureSpec, model: str, version: int, trusted: Sequence[Path] | None
) -> FeatureFunction:
    """The version's copied feature code (hash-checked, trusted root) or its import path."""
    if spec.code is None:
        return import_function(spec.function)
    try:
        if trusted is not None:
            check_trusted(directory.parent, trusted, "feature code")
        module = load_code(directory, spec.code, model, version)
    except UntrustedArtifact as exc:
        raise ArtifactError(str(exc)) from exc
    except Exception as exc:  # the module itself fails to import: the version cannot serve
        raise ArtifactError(
            f"{directory / spec.code.file}: importing the feature code failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, spec.function, None)
    if not callable(function):
        raise ArtifactError(f"{directory / spec.code.file}: has no callable {spec.function!r}")
    return function


def load_transformer(
    directory: Path, spec: FeatureSpec, allow_pickle: bool, trusted: Sequence[Path] | None = None
) -> Any:
    path = directory / spec.transformer
    if path.parent != directory or not path.is_file():
        raise ArtifactError(f"{path}: transformer file missing")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256.lower():
        raise ArtifactError(f"{path}: sha256 {digest} does not match the manifest's {spec.sha256}")
    if spec.format == "pickle":
        if not allow_pickle:
            raise ArtifactError(
                f"{path}: pickle transformers are refused (set features.allow_pickle to trust them)"
            )
        if trusted is not None:
            try:
                check_trusted(directory.parent, trusted, "pickle transformer")
            except UntrustedArtifact as exc:
                raise ArtifactError(str(exc)) from exc
        return pickle.loads(data)
    import skops.io

    try:
        return skops.io.loads(data, trusted=list(spec.trusted_types))
    except Exception as exc:  # skops raises several types for untrusted or broken files
        raise ArtifactError(f"{path}: skops refused the file: {exc}") from exc


class FeaturePipeline:
    """Derive, then transform, a whole batch at once, ending in the graph input's dtype."""

    def __init__(
        self,
        function: FeatureFunction,
        transformer: Any,
        input_name: str,
        dtype: np.dtype,
        compiled: CompiledTransformer | None = None,
    ) -> None:
        self.function = function
        self.transformer = transformer
        self.input_name = input_name
        self.dtype = dtype
        self.compiled = compiled

    @classmethod
    def load(
        cls,
        directory: Path,
        spec: FeatureSpec,
        dtype: np.dtype,
        allow_pickle: bool,
        model: str = "",
        version: int = 0,
        trusted: Sequence[Path] | None = None,
    ) -> FeaturePipeline:
        """``directory`` is the version's ``assets.extra``; ``trusted`` None: no root check."""
        function = code_function(directory, spec, model, version, trusted)
        transformer = load_transformer(directory, spec, allow_pickle, trusted)
        if not hasattr(transformer, "transform"):
            raise ArtifactError(f"{spec.transformer}: has no transform() method")
        compiled = compile_transformer(transformer)
        if compiled is None:
            log.info(
                "%s: no compiled form, serving with %s.transform",
                spec.transformer,
                type(transformer).__name__,
            )
        return cls(function, transformer, spec.signature_input, dtype, compiled)

    def derive(self, records: Sequence[Mapping[str, Any]], paths: Sequence[str]) -> list[dict]:
        rows: list[dict] = []
        problems: list[str] = []
        for record, path in zip(records, paths, strict=True):
            try:
                rows.append(self.function(record))
            except Exception as exc:  # the caller's data made the function fail: a 422
                problems.append(
                    f"{path or '<record>'}: rejected by the feature function: "
                    f"{type(exc).__name__}: {exc}"
                )
        if problems:
            raise RecordsRejected(problems)
        return rows

    def transform(self, rows: list[dict]) -> np.ndarray:
        if self.compiled is not None:
            matrix = self.compiled.transform(rows)
        else:
            import pandas as pd

            matrix = np.asarray(self.transformer.transform(pd.DataFrame.from_records(rows)))
        if matrix.ndim != 2:
            raise ArtifactError(f"transformer answered a {matrix.ndim}-D array, expected 2-D")
        return matrix.astype(self.dtype, copy=False)
