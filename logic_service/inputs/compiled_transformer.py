"""A fast path for common fitted scikit-learn transformers.

``ColumnTransformer.transform`` on one record costs ~3 ms (input checks, pandas
indexing, joblib dispatch): more than the whole latency budget of a request.
The fitted parameters of the usual preprocessing blocks are tiny, so we
re-express them as numpy on the list of derived dicts, with no DataFrame:

* ``ColumnTransformer`` (dense output, columns named by string, drop/passthrough)
* ``Pipeline`` of the steps below
* ``SimpleImputer`` (no indicator), ``StandardScaler``
* ``OneHotEncoder`` (no ``drop``, no infrequent categories, dense output)

Anything else (or any setting outside that) leaves the transformer to sklearn.
A compiled form is used only after it reproduced sklearn's own output on probe
rows built from the fitted parameters (every category, the imputation values,
an unknown category, a missing number), so a difference in semantics shows up
when the version loads, never as a silently different score.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Block: derived rows -> 2-D float array.
Block = Callable[[Sequence[dict]], np.ndarray]
# Step: 2-D array -> 2-D array.
Step = Callable[[np.ndarray], np.ndarray]

PARITY_ATOL = 1e-9


class _Unsupported(Exception):
    pass


class CompiledTransformer:
    def __init__(self, blocks: list[Block]) -> None:
        self._blocks = blocks

    def transform(self, rows: Sequence[dict]) -> np.ndarray:
        parts = [block(rows) for block in self._blocks]
        return np.hstack(parts) if len(parts) > 1 else parts[0]


def compile_transformer(transformer: Any) -> CompiledTransformer | None:
    """The compiled equivalent of ``transformer``, or None when it cannot be trusted to match."""
    try:
        compiled = CompiledTransformer(_column_transformer(transformer))
        probe = _probe_rows(transformer)
    except _Unsupported as why:
        log.debug("transformer not compiled: %s", why)
        return None
    import pandas as pd

    expected = np.asarray(transformer.transform(pd.DataFrame.from_records(probe)), dtype=float)
    got = np.asarray(compiled.transform(probe), dtype=float)
    if expected.shape != got.shape or not np.allclose(
        expected, got, rtol=0, atol=PARITY_ATOL, equal_nan=True
    ):
        log.warning("compiled transformer differs from sklearn on probe rows; using sklearn")
        return None
    return compiled


def _cls(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _column_transformer(ct: Any) -> list[Block]:
    if _cls(ct) != "sklearn.compose._column_transformer.ColumnTransformer":
        raise _Unsupported(f"top level is {_cls(ct)}")
    if getattr(ct, "sparse_output_", False):
        raise _Unsupported("sparse output")
    blocks: list[Block] = []
    for _name, estimator, columns in ct.transformers_:
        if estimator == "drop":
            continue
        if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
            raise _Unsupported("columns not selected by name")
        if not columns:
            continue
        if estimator == "passthrough":
            blocks.append(_numeric_block(list(columns), []))
        else:
            blocks.append(_estimator_block(estimator, list(columns)))
    if not blocks:
        raise _Unsupported("no output columns")
    return blocks


def _estimator_block(estimator: Any, columns: list[str]) -> Block:
    kind = _cls(estimator)
    if kind == "sklearn.preprocessing._encoders.OneHotEncoder":
        return _one_hot_block(estimator, columns)
    steps = estimator.steps if kind == "sklearn.pipeline.Pipeline" else [("only", estimator)]
    return _numeric_block(columns, [_numeric_step(step) for _, step in steps])


def _numeric_step(step: Any) -> Step:
    kind = _cls(step)
    if kind == "sklearn.impute._base.SimpleImputer":
        if step.add_indicator or not _is_nan(step.missing_values):
            raise _Unsupported("imputer with indicator or non-NaN missing value")
        fill = np.asarray(step.statistics_, dtype=float)
        if np.isnan(fill).any():
            raise _Unsupported("imputer drops all-missing columns")

        def impute(x: np.ndarray) -> np.ndarray:
            missing = np.isnan(x)
            if missing.any():
                x = np.where(missing, fill, x)
            return x

        return impute
    if kind == "sklearn.preprocessing._data.StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standardize(x: np.ndarray) -> np.ndarray:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x

        return standardize
    raise _Unsupported(f"step {kind}")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _numeric_block(columns: list[str], steps: list[Step]) -> Block:
    def block(rows: Sequence[dict]) -> np.ndarray:
        x = np.array([[_number(row[c]) for c in columns] for row in rows], dtype=np.float64)
        for step in steps:
            x = step(x)
        return x

    return block


def _one_hot_block(encoder: Any, columns: list[str]) -> Block:
    if encoder.drop is not None or getattr(encoder, "infrequent_categories_", None):
        raise _Unsupported("one-hot with drop or infrequent categories")
    if getattr(encoder, "sparse_output", False):
        raise _Unsupported("sparse one-hot")
    if encoder.handle_unknown not in ("ignore", "error"):
        raise _Unsupported(f"handle_unknown={encoder.handle_unknown}")
    lookups: list[dict[Any, int]] = []
    offset = 0
    for categories in encoder.categories_:
        if any(not isinstance(c, str) for c in categories):
            raise _Unsupported("non-string categories")
        lookups.append({c: offset + i for i, c in enumerate(categories)})
        offset += len(categories)
    width, dtype, strict = offset, encoder.dtype, encoder.handle_unknown == "error"
    pairs = list(zip(columns, lookups, strict=True))

    def block(rows: Sequence[dict]) -> np.ndarray:
        out = np.zeros((len(rows), width), dtype=dtype)
        for r, row in enumerate(rows):
            for column, lookup in pairs:
                index = lookup.get(row[column])
                if index is not None:
                    out[r, index] = 1
                elif strict:
                    raise ValueError(f"{column}: unknown category {row[column]!r}")
        return out

    return block


def _probe_rows(ct: Any) -> list[dict]:
    """Rows that exercise every fitted parameter: each category, fill values, unknowns."""
    numeric: dict[str, list[Any]] = {}
    categorical: dict[str, list[Any]] = {}
    for _name, estimator, columns in ct.transformers_:
        if estimator == "drop" or not columns:
            continue
        if _cls(estimator) == "sklearn.preprocessing._encoders.OneHotEncoder":
            ignore = estimator.handle_unknown == "ignore"
            for column, categories in zip(columns, estimator.categories_, strict=True):
                values = list(categories) + (["<tierkit-unknown>"] if ignore else [])
                categorical[column] = values
        else:
            for column in columns:
                numeric[column] = [0.0, 1.5, -2.25, 1e6]
    has_imputer = any(
        _cls(step) == "sklearn.impute._base.SimpleImputer"
        for _name, estimator, _cols in ct.transformers_
        for _s, step in getattr(estimator, "steps", [])
    )
    count = max([len(v) for v in categorical.values()] + [4])
    rows = []
    for i in range(count):
        row: dict[str, Any] = {}
        for column, values in numeric.items():
            row[column] = values[i % len(values)]
        for column, values in categorical.items():
            row[column] = values[i % len(values)]
        rows.append(row)
    if has_imputer and numeric:
        rows[0] = rows[0] | dict.fromkeys(numeric, math.nan)
    return rows
