"""Sample inputs for the parity check and the warmup file.

Samples come from a TF Serving request body (``--sample FILE.json``: columnar
``{"inputs": ...}`` or row ``{"instances": [...]}``) or are generated from the
signature. Either way they are checked against the exported signature first,
so a sample that does not fit is reported as the user's mistake, not as a
TensorFlow error from deep inside a session run.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from export.checks.signatures import SignatureInfo
from export.errors import ExportError

GENERATED_BATCH = 8
GENERATED_SEED = 0
# Unknown inner dimensions (sequence length, ...) get one shared size so that
# inputs meant to line up still do.
GENERATED_INNER_DIM = 4

# numpy kinds each target kind accepts without silently changing values
_COMPATIBLE_KINDS = {"f": "fiub", "c": "fciub", "i": "iub", "u": "iub", "b": "b"}


@dataclass(frozen=True)
class SampleRequest:
    """A parsed sample file: its format, optional signature name and payload."""

    path: Path
    layout: str  # "inputs" (columnar) or "instances" (rows)
    payload: Any
    signature_name: str | None


def numpy_dtype(dtype_name: str) -> np.dtype:
    """``DT_FLOAT`` -> float32; strings map to object arrays of bytes."""
    dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(dtype_name))
    if dtype == tf.string:
        return np.dtype(object)
    return np.dtype(dtype.as_numpy_dtype)


def read_sample_file(path: Path) -> SampleRequest:
    """Parse and shape-check the JSON body; tensors are checked later, per signature."""
    if not path.is_file():
        raise ExportError(f"--sample {path}: no such file")
    try:
        body = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"--sample {path}: not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ExportError(
            f"--sample {path}: expected a JSON object with 'inputs' or 'instances', "
            f"got {type(body).__name__}"
        )
    layouts = [key for key in ("inputs", "instances") if key in body]
    if len(layouts) != 1:
        raise ExportError(
            f"--sample {path}: needs exactly one of 'inputs' (columnar) or 'instances' (rows)"
        )
    signature_name = body.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise ExportError(f"--sample {path}: 'signature_name' must be a string")
    layout = layouts[0]
    payload = body[layout]
    if layout == "instances" and (not isinstance(payload, list) or not payload):
        raise ExportError(f"--sample {path}: 'instances' must be a non-empty list")
    return SampleRequest(path, layout, payload, signature_name)


def sample_arrays(request: SampleRequest, signature: SignatureInfo) -> dict[str, np.ndarray]:
    """The request's tensors, keyed by signature input, checked against the signature."""
    inputs: dict[str, Any] = signature["inputs"]
    where = f"--sample {request.path}"
    if request.layout == "inputs":
        named = request.payload if isinstance(request.payload, dict) else None
        if named is None:
            named = {_single_input(inputs, where): request.payload}
    else:
        named = _rows_to_columns(request.payload, inputs, where)
    missing = sorted(set(inputs) - set(named))
    unknown = sorted(set(named) - set(inputs))
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing input(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown input(s) {', '.join(unknown)}")
        raise ExportError(
            f"{where}: {'; '.join(problems)}; the signature takes {', '.join(sorted(inputs))}"
        )
    return {key: _to_array(named[key], inputs[key], f"{where}: input {key!r}") for key in inputs}


def _single_input(inputs: dict[str, Any], where: str) -> str:
    if len(inputs) != 1:
        raise ExportError(
            f"{where}: the signature has {len(inputs)} inputs ({', '.join(sorted(inputs))}); "
            "name them in an object"
        )
    return next(iter(inputs))


def _rows_to_columns(rows: list[Any], inputs: dict[str, Any], where: str) -> dict[str, Any]:
    if not all(isinstance(row, dict) for row in rows):
        if any(isinstance(row, dict) for row in rows):
            raise ExportError(f"{where}: 'instances' mixes objects and plain values")
        return {_single_input(inputs, where): rows}
    keys = set(rows[0])
    for index, row in enumerate(rows):
        if set(row) != keys:
            raise ExportError(
                f"{where}: instance {index} has keys {sorted(row)}, instance 0 has {sorted(keys)}"
            )
    return {key: [row[key] for row in rows] for key in keys}


def _decode_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _to_array(value: Any, info: dict[str, Any], where: str) -> np.ndarray:
    target = numpy_dtype(info["dtype"])
    try:
        if target == np.dtype(object):
            array = np.asarray(_decode_strings(value), dtype=object)
            if not all(isinstance(item, bytes) for item in array.reshape(-1)):
                raise ValueError("expected strings")
        else:
            raw = np.asarray(value)
            if raw.dtype.kind not in _COMPATIBLE_KINDS.get(target.kind, target.kind):
                raise ValueError(f"got values of type {raw.dtype}")
            array = raw.astype(target)
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{where}: cannot be read as {info['dtype']}: {exc}") from exc
    shape = info["shape"]
    if shape is not None:
        fits = array.ndim == len(shape) and all(
            want in (-1, got) for want, got in zip(shape, array.shape, strict=True)
        )
        if not fits:
            raise ExportError(
                f"{where}: shape {list(array.shape)} does not match the signature's {shape} "
                "(-1 = any size)"
            )
    return array


def generate_arrays(signature: SignatureInfo, seed: int = GENERATED_SEED) -> dict[str, np.ndarray]:
    """Random values of each input's dtype and shape: a batch of 8, fixed seed.

    Integers are drawn from {0, 1} so that embedding lookups and vocabularies
    of any size accept them; models that need meaningful values take --sample.
    """
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for key in sorted(signature["inputs"]):
        info = signature["inputs"][key]
        target = numpy_dtype(info["dtype"])
        if info["shape"] is None:
            shape: tuple[int, ...] = (GENERATED_BATCH,)
        else:
            shape = tuple(
                (GENERATED_BATCH if axis == 0 else GENERATED_INNER_DIM) if dim < 0 else dim
                for axis, dim in enumerate(info["shape"])
            )
        if target == np.dtype(object):
            flat = [f"sample-{i}".encode() for i in range(int(np.prod(shape)))]
            arrays[key] = np.array(flat, dtype=object).reshape(shape)
        elif target.kind == "b":
            arrays[key] = rng.integers(0, 2, size=shape).astype(bool)
        elif target.kind in "iu":
            arrays[key] = rng.integers(0, 2, size=shape).astype(target)
        elif target.kind in "fc":
            arrays[key] = rng.standard_normal(size=shape).astype(target)
        else:
            raise ExportError(
                f"cannot generate samples for input {key!r} of type {info['dtype']}; "
                "pass --sample FILE.json"
            )
    return arrays


def batch_size(arrays: dict[str, np.ndarray]) -> int:
    """Rows in a sample batch: the leading dimension shared by all inputs, else 1."""
    leading = {array.shape[0] for array in arrays.values() if array.ndim > 0}
    return leading.pop() if len(leading) == 1 else 1
