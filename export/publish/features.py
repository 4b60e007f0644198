"""The feature artifacts that travel with a version (``--features``, ``--feature-module``).

The logic tier turns a raw request into the model's input with two pieces: a
plain Python function (raw record -> derived features) and a fitted transformer
saved with skops (or pickle). Both are pinned in the manifest: the transformer
is copied into ``assets.extra/`` with its sha256 and the list of types the
logic tier must trust to load it, and the function's module file
(``--feature-module``) is copied as ``assets.extra/features.py`` with its
sha256 (``feature_code``), so features can never drift away from the graph
they were trained for. ``--feature-function module:attr`` (the demo) names an
importable function instead, which does not travel.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.digests import file_sha256
from export.errors import ExportError
from export.publish.feature_code import (
    CODE_FILE,
    DEFAULT_FUNCTION,
    example_of,
    function_of,
    load_feature_module,
)

if TYPE_CHECKING:
    from export.checks.signatures import SignatureInfo

FEATURE_PACKAGE = "logic_service.features"
_FORMATS = {".skops": "skops", ".pkl": "pickle", ".pickle": "pickle"}


@dataclass(frozen=True)
class FeatureArtifact:
    """A validated ``--features`` file plus the function that feeds it.

    ``code`` is the ``--feature-module`` file copied into the version (then
    ``function`` is the attribute's name, ``derive``); without it ``function``
    is an import path (``module:attr``) the logic tier imports from its own
    installation, as before.
    """

    source: Path
    format: str  # "skops" or "pickle"
    function: str
    trusted_types: list[str]
    input_schema: dict[str, Any]
    derive: Any = None  # the function itself, for the end-to-end check
    example: dict[str, Any] | None = None  # one raw record (EXAMPLE_REQUEST or --example)
    code: Path | None = None
    code_sha256: str | None = None

    @property
    def file_name(self) -> str:
        return "features.skops" if self.format == "skops" else "features.pkl"


def default_function(model_name: str) -> str | None:
    """``logic_service.features.<name>:derive`` when that module exists."""
    module = f"{FEATURE_PACKAGE}.{model_name}"
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return f"{module}:derive" if found else None


def _import_function(path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ExportError(f"--feature-function {path!r}: expected 'module:attr'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing to import
        raise ExportError(
            f"--feature-function {path!r}: cannot import {module_name}: {exc}"
        ) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ExportError(f"--feature-function {path!r}: {module_name} has no callable {attr!r}")
    return module


def read_schema(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ExportError(f"--input-schema {path}: no such file")
    try:
        schema = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"--input-schema {path}: not valid JSON: {exc}") from exc
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise ExportError(
            f'--input-schema {path}: must be a JSON Schema object with "type": "object" '
            "(it describes one raw record)"
        )
    return schema


def read_example(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ExportError(f"--example {path}: no such file")
    try:
        example = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"--example {path}: not valid JSON: {exc}") from exc
    if not isinstance(example, dict):
        raise ExportError(f"--example {path}: must be one raw record (a JSON object)")
    return example


def resolve_features(
    features: Path | None,
    feature_function: str | None,
    input_schema: Path | None,
    model_name: str,
    feature_module: Path | None = None,
    example: Path | None = None,
) -> FeatureArtifact | None:
    """Validate ``--features`` and friends before any slow step runs."""
    if features is None:
        for option, value in (
            ("--feature-function", feature_function),
            ("--feature-module", feature_module),
            ("--input-schema", input_schema),
            ("--example", example),
        ):
            if value is not None:
                raise ExportError(f"{option} needs --features FILE (the fitted transformer)")
        return None
    if not features.is_file():
        raise ExportError(f"--features {features}: no such file")
    file_format = _FORMATS.get(features.suffix.lower())
    if file_format is None:
        raise ExportError(
            f"--features {features}: unknown file type {features.suffix!r}; "
            "expected .skops (skops.io.dump) or .pkl (pickle)"
        )
    trusted: list[str] = []
    if file_format == "skops":
        import skops.io

        try:
            trusted = sorted(skops.io.get_untrusted_types(file=features))
        except Exception as exc:  # BadZipFile, KeyError, JSONDecodeError: not a skops file
            raise ExportError(f"--features {features}: not a skops file: {exc}") from exc
    code: Path | None = None
    code_sha256: str | None = None
    if feature_module is not None:
        if feature_function is not None:
            raise ExportError(
                "--feature-module and --feature-function exclude each other: the module's "
                f"{DEFAULT_FUNCTION!r} travels with the version, an import path does not"
            )
        module, code_sha256 = load_feature_module(feature_module)
        function = DEFAULT_FUNCTION
        derive = function_of(module, function, f"--feature-module {feature_module}")
        code = feature_module
    else:
        function = feature_function or default_function(model_name)
        if function is None:
            raise ExportError(
                "--features needs a feature function: pass --feature-module FILE.py (copied "
                "into the version) or --feature-function module:attr "
                f"(there is no module {FEATURE_PACKAGE}.{model_name})"
            )
        module = _import_function(function)
        derive = getattr(module, function.partition(":")[2])
    if input_schema is not None:
        schema = read_schema(input_schema)
    else:
        found = getattr(module, "INPUT_SCHEMA", None)
        if not isinstance(found, dict):
            # the logic tier validates every raw record before calling the function
            raise ExportError(
                f"--features needs a JSON Schema of the raw record: pass --input-schema "
                f"FILE.json ({module.__name__} has no INPUT_SCHEMA dict)"
            )
        schema = found
    where = f"--feature-module {feature_module}" if code else module.__name__
    record = read_example(example) if example is not None else example_of(module, where)
    return FeatureArtifact(
        features, file_format, function, trusted, schema, derive, record, code, code_sha256
    )


def signature_input(
    artifact: FeatureArtifact, signature: SignatureInfo, requested: str | None
) -> str:
    """The signature input that receives the transformer's output, checked for fit."""
    inputs: dict[str, Any] = signature["inputs"]
    if requested is not None:
        chosen = requested
        if chosen not in inputs:
            raise ExportError(
                f"--signature-input {chosen!r}: the signature's inputs are "
                f"{', '.join(sorted(inputs))}"
            )
    elif len(inputs) == 1:
        chosen = next(iter(inputs))
    elif "features" in inputs:
        chosen = "features"
    else:
        raise ExportError(
            "--features: the signature has several inputs "
            f"({', '.join(sorted(inputs))}); say which takes the transformer's output "
            "with --signature-input NAME"
        )
    info = inputs[chosen]
    if info["shape"] is not None and len(info["shape"]) != 2:
        raise ExportError(
            f"--features: signature input {chosen!r} has shape {info['shape']}; the "
            "transformer's output is a 2-D batch [rows, features]"
        )
    width = _transformer_width(artifact)
    expected = None if info["shape"] is None else info["shape"][1]
    if width is not None and expected not in (None, -1) and width != expected:
        raise ExportError(
            f"--features {artifact.source}: the transformer produces {width} features, "
            f"signature input {chosen!r} takes {expected}"
        )
    return chosen


def _transformer_width(artifact: FeatureArtifact) -> int | None:
    """Output width of a skops transformer, when it can tell (pickle is never loaded here)."""
    if artifact.format != "skops":
        return None
    import skops.io

    try:
        transformer = skops.io.load(artifact.source, trusted=artifact.trusted_types)
        return len(transformer.get_feature_names_out())
    except Exception:  # not fitted, no feature names: the logic tier will find out
        return None


def copy_artifact(artifact: FeatureArtifact, extra_dir: Path) -> dict[str, Any]:
    """Copy the transformer into ``assets.extra/`` and describe it for the manifest."""
    extra_dir.mkdir(parents=True, exist_ok=True)
    target = extra_dir / artifact.file_name
    shutil.copyfile(artifact.source, target)
    entry: dict[str, Any] = {
        "function": artifact.function,
        "transformer": artifact.file_name,
        "format": artifact.format,
        "sha256": file_sha256(target),
        "trusted_types": artifact.trusted_types,
    }
    if artifact.code is not None:
        code = extra_dir / CODE_FILE
        shutil.copyfile(artifact.code, code)
        digest = file_sha256(code)
        if digest != artifact.code_sha256:
            raise ExportError(f"--feature-module {artifact.code}: changed while exporting")
        entry["code"] = {"file": CODE_FILE, "sha256": digest}
    return entry
