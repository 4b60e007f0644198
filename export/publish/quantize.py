"""``--quantize MODE``: a TF Lite model beside the SavedModel, checked before it ships.

TF Serving with ``--prefer_tflite_model=true`` serves ``model.tflite`` from the
version directory instead of the SavedModel (``kTfLiteModelFilename`` in
tensorflow_serving/servables/tensorflow/saved_model_bundle_factory.cc); without
the flag the SavedModel serves. So a quantized version is one directory that
both kinds of graph server can serve, and the SavedModel stays the reference.

Modes (TF Lite's post-training quantization):

| mode | weights | activations | default ``--quantize-atol`` |
| --- | --- | --- | --- |
| ``float16`` | float16 | float32 | 1e-3 |
| ``dynamic`` | int8 | float32 (int8 inside matmuls, ranges per batch) | 2e-2 |
| ``int8`` | int8 | int8, ranges calibrated on rows (``--calibration``, else the samples) | 5e-2 |

Inputs and outputs stay float32 in every mode, so the signature clients call is
the SavedModel's. Only TF Lite's builtin ops are allowed: TF Serving's TF Lite
session resolves no others. The tolerances bound each output's absolute change
against the float SavedModel on the samples; they fit outputs of order 1
(probabilities, scores) and int8's 1/256 output steps. The metric delta on
labelled rows (``--eval``) is the check that matters for the product.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.checks.eval_metrics import MetricDelta, metric_delta, pick_output, read_labels
from export.checks.parity import ParityResult, compare_outputs
from export.checks.tflite_runner import TfLiteModel
from export.errors import ExportError
from export.options import DEFAULT_QUANTIZE_ATOL
from export.progress import Progress

TFLITE_FILE = "model.tflite"  # kTfLiteModelFilename (saved_model_bundle_factory.cc)


@dataclass(frozen=True)
class QuantizeRequest:
    """What to convert and how to judge it."""

    mode: str
    atol: float
    calibration: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray] | None
    eval_path: Path | None
    max_metric_drop: float | None


@dataclass(frozen=True)
class QuantizeResult:
    model_bytes: int
    parity: ParityResult
    delta: MetricDelta | None

    def as_manifest(self, request: QuantizeRequest, saved_model_bytes: int) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "format": "tflite",
            "mode": request.mode,
            "file": TFLITE_FILE,
            "bytes": self.model_bytes,
            "saved_model_bytes": saved_model_bytes,
            "calibration_rows": _rows(request.calibration) if request.mode == "int8" else None,
            "parity": self.parity.as_manifest(),
            "eval": self.delta.as_manifest() if self.delta is not None else None,
        }
        if request.max_metric_drop is not None:
            entry["max_metric_drop"] = request.max_metric_drop
        return entry


def tolerance(mode: str, override: float | None) -> float:
    """``--quantize-atol`` if given, else the mode's default."""
    return DEFAULT_QUANTIZE_ATOL[mode] if override is None else override


def _rows(arrays: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(arrays.values())))


def convert(
    saved_model: Path, signature_name: str, mode: str, calibration: Mapping[str, np.ndarray]
) -> bytes:
    """The signature of ``saved_model`` as a TF Lite flatbuffer quantized by ``mode``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[signature_name]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: _one_row_at_a_time(calibration)
    try:
        with warnings.catch_warnings():  # int8 calibration's interpreter: "use LiteRT"
            warnings.simplefilter("ignore")
            return converter.convert()
    except Exception as exc:
        message = " ".join(str(exc).split())[:600]
        raise ExportError(
            f"--quantize {mode}: TF Lite cannot convert signature {signature_name!r} with "
            f"builtin ops only ({message})"
        ) from None


def _one_row_at_a_time(arrays: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    for row in range(_rows(arrays)):
        yield {key: np.asarray(value[row : row + 1]) for key, value in arrays.items()}


def quantize(
    version_dir: Path,
    signature_name: str,
    request: QuantizeRequest,
    samples: Mapping[str, np.ndarray],
    run_float: Any,
    progress: Progress,
) -> QuantizeResult:
    """Convert, write ``model.tflite``, check parity and the metric delta; raise on failure.

    ``run_float(inputs)`` runs the exported SavedModel (the reference).
    """
    progress.step(
        f"quantizing {signature_name!r} to TF Lite ({request.mode})"
        + (f", calibrated on {_rows(request.calibration)} row(s)" if request.mode == "int8" else "")
    )
    model = convert(version_dir, signature_name, request.mode, request.calibration)
    (version_dir / TFLITE_FILE).write_bytes(model)
    lite = TfLiteModel(model)
    rows = _rows(samples)
    progress.step(
        f"parity check of {TFLITE_FILE} ({len(model):,} bytes): {rows} sample(s) through the "
        "SavedModel and through the TF Lite interpreter"
    )
    parity = compare_outputs(
        run_float(samples),
        lite.run(signature_name, samples),
        rows,
        request.atol,
        exported_label=f"the {request.mode} TF Lite model",
        tolerance_flag="--quantize-atol",
    )
    progress.step(f"parity ok: max abs diff {parity.max_abs_diff:.3g} <= {request.atol:g}")
    delta = None
    if request.evaluation is not None and request.eval_path is not None:
        delta = _evaluate(request, signature_name, lite, run_float, progress)
    return QuantizeResult(len(model), parity, delta)


def _evaluate(
    request: QuantizeRequest,
    signature_name: str,
    lite: TfLiteModel,
    run_float: Any,
    progress: Progress,
) -> MetricDelta:
    assert request.evaluation is not None and request.eval_path is not None
    rows = _rows(request.evaluation)
    labels = read_labels(request.eval_path, rows)
    reference = run_float(request.evaluation)
    output = pick_output(reference, request.eval_path)
    quantized = lite.run(signature_name, request.evaluation)
    delta = metric_delta(reference[output], quantized[output], labels)
    after = delta.quantized[delta.metric]
    progress.step(
        f"eval on {rows} labelled row(s) ({request.eval_path}): {delta.metric} "
        f"{delta.reference[delta.metric]:.4f} (float) -> {after:.4f} ({request.mode}), "
        f"drop {delta.drop:+.4f}"
    )
    if request.max_metric_drop is not None and not delta.drop <= request.max_metric_drop:
        raise ExportError(
            f"--max-metric-drop {request.max_metric_drop:g}: {request.mode} loses "
            f"{delta.drop:.4f} {delta.metric} on {request.eval_path} "
            f"({delta.reference[delta.metric]:.4f} -> {after:.4f}); nothing published"
        )
    return delta
