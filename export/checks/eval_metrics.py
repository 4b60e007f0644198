"""Labelled samples (``--eval FILE``) and the metric a quantized model gives up.

Parity bounds how far each output moves; what matters to the product is
whether the model still ranks or classifies as well. So with labelled rows the
export scores the float SavedModel and the quantized model on them with the
metric that fits the output, and writes both and the delta to the manifest:

- one probability per row (shape ``[n]`` or ``[n, 1]``, values in [0, 1]) and
  0/1 labels: ROC AUC (primary) and log loss;
- one score per class (``[n, k]``, k > 1) and integer labels: accuracy (primary);
- anything else: mean absolute error (primary; lower is better).

The file is a TF Serving request body, like ``--sample``, plus ``"labels"``:
``{"inputs": {"features": [[...], ...]}, "labels": [0, 1, ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ExportError

# Metrics where a larger value is better; a "drop" is then float minus quantized.
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "mae": False}


def read_labels(path: Path, rows: int) -> np.ndarray:
    """The ``labels`` of an eval file whose inputs have ``rows`` rows."""
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"--eval {path}: not readable JSON: {exc}") from exc
    labels = body.get("labels") if isinstance(body, dict) else None
    if not isinstance(labels, list) or not labels:
        raise ExportError(f"--eval {path}: needs a non-empty 'labels' list, one per row")
    if len(labels) != rows:
        raise ExportError(f"--eval {path}: {len(labels)} labels for {rows} rows")
    try:
        return np.asarray(labels, dtype=np.float64).reshape(rows, -1)[:, 0]
    except (TypeError, ValueError) as exc:
        raise ExportError(f"--eval {path}: 'labels' must be numbers: {exc}") from exc


def pick_output(outputs: Mapping[str, np.ndarray], path: Path) -> str:
    if len(outputs) != 1:
        raise ExportError(
            f"--eval {path}: the signature has {len(outputs)} outputs "
            f"({', '.join(sorted(outputs))}); --eval scores a single-output signature"
        )
    return next(iter(outputs))


def _flat(output: np.ndarray) -> np.ndarray:
    values = np.asarray(output, dtype=np.float64)
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def metric_kind(output: np.ndarray, labels: np.ndarray) -> str:
    """``binary``, ``multiclass`` or ``regression``, from the float model's output."""
    values = _flat(output)
    binary_labels = set(np.unique(labels)) <= {0.0, 1.0}
    if values.ndim == 1 and binary_labels and values.min() >= 0 and values.max() <= 1:
        if len(set(labels)) < 2:
            raise ExportError("--eval: AUC needs both classes among the labels")
        return "binary"
    return "multiclass" if values.ndim == 2 else "regression"


def score(output: np.ndarray, labels: np.ndarray, kind: str) -> dict[str, float]:
    """The metrics of ``kind`` for ``output`` against ``labels``; the primary one first."""
    from sklearn import metrics

    values = _flat(output)
    if kind == "binary":
        clipped = np.clip(values, 1e-7, 1 - 1e-7)
        return {
            "auc": float(metrics.roc_auc_score(labels, values)),
            "logloss": float(metrics.log_loss(labels, clipped, labels=[0, 1])),
        }
    if kind == "multiclass":
        return {"accuracy": float(np.mean(np.argmax(values, axis=1) == labels.astype(int)))}
    return {"mae": float(np.mean(np.abs(values.reshape(len(labels), -1)[:, 0] - labels)))}


@dataclass(frozen=True)
class MetricDelta:
    """The float and quantized scores on the same labelled rows."""

    rows: int
    metric: str
    reference: dict[str, float]
    quantized: dict[str, float]

    @property
    def drop(self) -> float:
        """How much worse the primary metric got (negative: it improved)."""
        before, after = self.reference[self.metric], self.quantized[self.metric]
        return before - after if HIGHER_IS_BETTER[self.metric] else after - before

    def as_manifest(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "metric": self.metric,
            "float": {k: round(v, 6) for k, v in self.reference.items()},
            "quantized": {k: round(v, 6) for k, v in self.quantized.items()},
            "delta": {k: round(self.quantized[k] - v, 6) for k, v in self.reference.items()},
            "drop": round(self.drop, 6),
        }


def metric_delta(
    reference: np.ndarray, quantized: np.ndarray, labels: np.ndarray
) -> MetricDelta:
    kind = metric_kind(reference, labels)
    before = score(reference, labels, kind)
    after = score(quantized, labels, kind)
    return MetricDelta(len(labels), next(iter(before)), before, after)
