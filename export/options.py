"""Typed settings of one export, built once from the command line.

The subcommands differ only in where the model comes from; everything after
that (repository, version, features, samples, parity tolerance) is this one
object, so the pipeline has a single, explicit input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError
from export.manifest import API_VERSION_PATTERN, DEFAULT_API_VERSION

# A model name becomes a directory under the repository and a TF Serving model
# name in URLs: keep it to one safe path segment.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

DEFAULT_REPOSITORY = Path("serving_models")
DEFAULT_ATOL = 1e-5
DEFAULT_SIGNATURE = "serving_default"
# --quantize modes and their default --quantize-atol (publish/quantize.py says why).
DEFAULT_QUANTIZE_ATOL = {"float16": 1e-3, "dynamic": 2e-2, "int8": 5e-2}
QUANTIZE_MODES = tuple(DEFAULT_QUANTIZE_ATOL)


@dataclass(frozen=True)
class ExportOptions:
    """Where and how to publish one model version."""

    name: str
    repo: Path = DEFAULT_REPOSITORY
    version: int | None = None
    force: bool = False
    features: Path | None = None
    feature_function: str | None = None
    feature_module: Path | None = None  # copied into the version (assets.extra/features.py)
    example: Path | None = None  # one raw record for the end-to-end check
    input_schema: Path | None = None
    signature_input: str | None = None
    api_version: str = DEFAULT_API_VERSION
    sample: Path | None = None
    atol: float = DEFAULT_ATOL
    quiet: bool = False
    # --quantize MODE (publish/quantize.py): a model.tflite beside the SavedModel.
    quantize: str | None = None
    quantize_atol: float | None = None  # None: the mode's default
    calibration: Path | None = None  # int8 ranges; None: the samples
    eval: Path | None = None  # labelled rows: the quantized model's metric delta
    max_metric_drop: float | None = None

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if self.version is not None and self.version < 0:
            raise ExportError(f"--version must be a non-negative integer, got {self.version}")
        if not self.atol >= 0:  # also rejects NaN
            raise ExportError(f"--atol must be a non-negative number, got {self.atol}")
        self._check_quantize()
        if not re.match(API_VERSION_PATTERN, self.api_version):
            raise ExportError(
                f"--api-version {self.api_version!r} is not an API version: use v1, v2, ... "
                "(v and a number from 1 to 9999)"
            )


    def _check_quantize(self) -> None:
        if self.quantize is None:
            for flag, value in (
                ("--quantize-atol", self.quantize_atol), ("--calibration", self.calibration),
                ("--eval", self.eval), ("--max-metric-drop", self.max_metric_drop),
            ):
                if value is not None:
                    raise ExportError(f"{flag} needs --quantize MODE")
            return
        if self.quantize not in QUANTIZE_MODES:
            raise ExportError(
                f"--quantize {self.quantize!r}: use one of {', '.join(QUANTIZE_MODES)}"
            )
        if self.quantize_atol is not None and not self.quantize_atol >= 0:
            raise ExportError(
                f"--quantize-atol must be a non-negative number, got {self.quantize_atol}"
            )
        if self.max_metric_drop is not None:
            if self.eval is None:
                raise ExportError("--max-metric-drop needs --eval FILE (labelled rows to score)")
            if not self.max_metric_drop >= 0:
                raise ExportError(
                    f"--max-metric-drop must be a non-negative number, got {self.max_metric_drop}"
                )
        if self.calibration is not None and self.quantize != "int8":
            raise ExportError("--calibration sets int8 ranges: it needs --quantize int8")
        for flag, path in (("--calibration", self.calibration), ("--eval", self.eval)):
            if path is not None and not path.is_file():
                raise ExportError(f"{flag} {path}: no such file")


def check_model_name(name: str) -> str:
    """Refuse names that cannot be one directory and one URL segment."""
    if not _MODEL_NAME.match(name):
        raise ExportError(
            f"--name {name!r} is not a valid model name: use letters, digits, '_', '-' "
            "and '.', starting with a letter or digit (at most 128 characters)"
        )
    return name
