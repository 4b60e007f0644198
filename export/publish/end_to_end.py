"""The end-to-end check: one raw record to a score, the way the logic tier will compute it.

The parity check compares tensors; a version can pass it and still not serve,
because what the logic tier runs before the graph (the feature function and
the transformer) never ran. Here the example record goes through exactly what
the version folder holds: the feature code as copied (loaded from its bytes
after the sha256 matched, under its own module name), the transformer as
copied (skops trusting only the types the manifest lists), the matrix cast to
the signature input's dtype, then the exported SavedModel under the session
loader the graph tier uses, and the original model on the same matrix. Any
failure, a non-finite score or a difference beyond ``--atol`` refuses the
export, naming the stage.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.checks.samples import numpy_dtype
from export.checks.signatures import SignatureInfo
from export.errors import ExportError
from export.publish.feature_code import exec_module, module_name_for


@dataclass(frozen=True)
class EndToEnd:
    """What the example record scored, for the manifest and the progress line."""

    outputs: dict[str, list[Any]]
    max_abs_diff: float

    def as_manifest(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "max_abs_diff": self.max_abs_diff}


def _fail(stage: str, exc: BaseException | str) -> ExportError:
    why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return ExportError(f"end-to-end check failed at {stage}: {why}")


def derive_function(extra_dir: Path, entry: dict[str, Any], imported: Any) -> Any:
    """The feature function as the logic tier will get it: the copied file, hash-checked."""
    code = entry.get("code")
    if code is None:
        return imported  # --feature-function: an import path, the same module both sides
    path = extra_dir / code["file"]
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if digest != code["sha256"]:
        raise _fail("loading the feature code", f"{path}: sha256 differs from the manifest's")
    try:
        module = exec_module(source, module_name_for(digest) + "_check", path)
    except Exception as exc:
        raise _fail(f"importing {path.name} from the version", exc) from exc
    return getattr(module, entry["function"])


def load_transformer(extra_dir: Path, entry: dict[str, Any]) -> Any:
    path = extra_dir / entry["transformer"]
    try:
        if entry["format"] == "pickle":
            return pickle.loads(path.read_bytes())
        import skops.io

        return skops.io.load(path, trusted=list(entry["trusted_types"]))
    except Exception as exc:
        raise _fail(f"loading {path.name}", exc) from exc


def run_end_to_end(
    example: dict[str, Any],
    extra_dir: Path,
    entry: dict[str, Any],
    imported: Any,
    signature: SignatureInfo,
    run_exported: Any,
    run_original: Any,
    atol: float,
) -> EndToEnd:
    """derive -> transformer -> exported graph (and the original) on ``example``."""
    import pandas as pd

    derive = derive_function(extra_dir, entry, imported)
    try:
        row = derive(example)
    except Exception as exc:
        raise _fail("the feature function on the example record", exc) from exc
    if not isinstance(row, dict):
        raise _fail("the feature function", f"returned {type(row).__name__}, expected a dict")
    transformer = load_transformer(extra_dir, entry)
    try:
        matrix = np.asarray(transformer.transform(pd.DataFrame.from_records([row])))
    except Exception as exc:
        raise _fail("the transformer on the derived features", exc) from exc
    name = entry["signature_input"]
    spec = signature["inputs"][name]
    if matrix.ndim != 2:
        raise _fail("the transformer", f"answered a {matrix.ndim}-D array, expected 2-D")
    width = spec["shape"][1] if spec["shape"] and len(spec["shape"]) == 2 else -1
    if width not in (-1, None) and matrix.shape[1] != width:
        raise _fail(
            "the transformer",
            f"answered {matrix.shape[1]} features, signature input {name!r} takes {width}",
        )
    cast = matrix.astype(numpy_dtype(spec["dtype"]))
    if cast.dtype.kind in "fc" and not np.all(np.isfinite(cast)):
        raise _fail(
            "the transformer on the derived features",
            f"the features are not finite as {spec['dtype']}: {cast.tolist()}",
        )
    inputs = {name: cast}
    try:
        exported = run_exported(inputs)
    except Exception as exc:
        raise _fail("the exported SavedModel", exc) from exc
    try:
        original = run_original(inputs)
    except Exception as exc:
        raise _fail("the original model", exc) from exc
    outputs: dict[str, list[Any]] = {}
    worst = 0.0
    for key, value in sorted(exported.items()):
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise _fail("the exported SavedModel", f"output {key!r} is not finite: {array}")
        if key in original and not np.all(np.isfinite(np.asarray(original[key], float))):
            raise _fail("the original model", f"output {key!r} is not finite")
        if key in original and array.dtype.kind in "fciu":
            diff = float(np.max(np.abs(array.astype(np.float64) - np.asarray(original[key]))))
            if not diff <= atol:
                raise _fail(
                    "comparing with the original model",
                    f"output {key!r} differs by {diff:.3g} (allowed: --atol {atol:g})",
                )
            worst = max(worst, diff)
        outputs[key] = array.tolist()
    if not math.isfinite(worst):
        raise _fail("comparing with the original model", "a difference is not finite")
    return EndToEnd(outputs, worst)
