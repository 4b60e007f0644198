"""Compare the original model's outputs with the exported SavedModel's.

A conversion can go wrong silently (wrong output order, a layer running in
training mode, a dropped preprocessing step); running the same samples through
both and bounding the difference is what makes an export trustworthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from export.errors import ExportError


@dataclass(frozen=True)
class ParityResult:
    samples: int
    max_abs_diff: float
    atol: float

    def as_manifest(self) -> dict[str, float | int]:
        return {"samples": self.samples, "max_abs_diff": self.max_abs_diff, "atol": self.atol}


def compare_outputs(
    original: Mapping[str, np.ndarray],
    exported: Mapping[str, np.ndarray],
    samples: int,
    atol: float,
    exported_label: str = "the exported SavedModel",
    tolerance_flag: str = "--atol",
) -> ParityResult:
    """Raise ``ExportError`` naming the first output that differs beyond ``atol``.

    ``exported_label`` and ``tolerance_flag`` name what was compared in the message
    (a quantized model is compared with the SavedModel under ``--quantize-atol``).
    """
    original_label = "the original model" if tolerance_flag == "--atol" else "the SavedModel"
    if set(original) != set(exported):
        raise ExportError(
            f"parity check failed: {original_label} returns outputs "
            f"{sorted(original)}, {exported_label} {sorted(exported)}"
        )
    worst = 0.0
    for key in sorted(original):
        want, got = np.asarray(original[key]), np.asarray(exported[key])
        if want.shape != got.shape:
            raise ExportError(
                f"parity check failed: output {key!r} has shape {list(want.shape)} in "
                f"{original_label} and {list(got.shape)} in {exported_label}"
            )
        diff = _max_abs_diff(want, got)
        if not diff <= atol:  # NaN counts as a failure
            raise ExportError(
                f"parity check failed: output {key!r} differs by {diff:.3g} between "
                f"{original_label} and {exported_label} (allowed: {tolerance_flag} {atol:g})"
            )
        worst = max(worst, diff)
    return ParityResult(samples=samples, max_abs_diff=float(worst), atol=atol)


def _max_abs_diff(want: np.ndarray, got: np.ndarray) -> float:
    if want.size == 0:
        return 0.0
    if want.dtype.kind in "OSU" or got.dtype.kind in "OSU":
        return 0.0 if np.array_equal(want, got) else float("inf")
    want_f, got_f = want.astype(np.float64), got.astype(np.float64)
    both_nan = np.isnan(want_f) & np.isnan(got_f)
    same_inf = np.isinf(want_f) & (want_f == got_f)
    diff = np.abs(want_f - got_f)
    diff[both_nan | same_inf] = 0.0
    return float(np.max(diff))
