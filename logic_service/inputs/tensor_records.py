"""Records for versions without feature processing: each record is one example of tensors.

A version whose manifest has ``features: null`` (or that has no manifest at
all) takes its signature's inputs directly. One record is an object with one
entry per signature input, each a number/string/bool or a nested list shaped
like the input without its batch dimension::

    {"x": [0.1, 0.2, 0.3]}                         # input x of shape [-1, 3]
    {"records": [{"x": [0.1, 0.2, 0.3]}, ...]}     # a batch

Records are stacked along a new first axis, which the signature must declare
as its batch dimension (-1), so a model with fixed-batch inputs is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from logic_service.codecs.dtypes import numpy_dtype
from logic_service.inputs.feature_pipeline import RecordsRejected
from logic_service.manifest import TensorSpec


class TensorRecordError(RecordsRejected):
    """Records not shaped like the signature's inputs; one line each."""


def stack_records(
    records: Sequence[Any], paths: Sequence[str], inputs: Mapping[str, TensorSpec]
) -> dict[str, np.ndarray]:
    problems: list[str] = []
    for record, path in zip(records, paths, strict=True):
        where = path or "<record>"
        if not isinstance(record, dict):
            problems.append(f"{where}: must be an object of the inputs {sorted(inputs)}")
            continue
        problems.extend(f"{_at(path, n)}: is required" for n in inputs if n not in record)
        problems.extend(
            f"{_at(path, n)}: is not an input of this model (inputs: {', '.join(sorted(inputs))})"
            for n in record
            if n not in inputs
        )
    if problems:
        raise TensorRecordError(problems)
    arrays: dict[str, np.ndarray] = {}
    for name, spec in inputs.items():
        values = [record[name] for record in records]
        try:
            array = np.asarray(values, dtype=numpy_dtype(spec.dtype))
        except (TypeError, ValueError) as exc:
            problems.append(
                f"{_field(paths, name)}: cannot be read as {spec.dtype} "
                f"of shape {_shape(spec)}: {exc}"
            )
            continue
        if spec.shape is not None and not _fits(array.shape, spec.shape):
            problems.append(
                f"{_field(paths, name)}: has shape {list(array.shape[1:])} per record, "
                f"the model wants {_shape(spec)}"
            )
            continue
        arrays[name] = array
    if problems:
        raise TensorRecordError(problems)
    return arrays


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _field(paths: Sequence[str], name: str) -> str:
    return _at(paths[0], name) if len(paths) == 1 else f"records[*].{name}"


def _shape(spec: TensorSpec) -> str:
    return "any" if spec.shape is None else str(spec.shape[1:])


def _fits(actual: tuple[int, ...], declared: list[int]) -> bool:
    if not declared or declared[0] not in (-1, actual[0]):
        return False
    if len(actual) != len(declared):
        return False
    return all(d in (-1, a) for a, d in zip(actual[1:], declared[1:], strict=True))
