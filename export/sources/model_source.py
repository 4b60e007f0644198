"""What every kind of model source offers the export pipeline.

A source loads the original artifact, writes it out as a SavedModel, and can
still run the *original* so the parity check compares like with like. The
pipeline never needs to know whether it came from Keras, a TF1 checkpoint or
an existing SavedModel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class ModelSource(Protocol):
    kind: str
    path: Path

    def default_version(self) -> int:
        """The artifact's training-end time (its modification time) in unix seconds."""
        ...

    def description(self) -> dict[str, Any]:
        """The manifest's ``source`` entry: kind, path, sha256 (and kind-specific keys)."""
        ...

    def load(self) -> None:
        """Load the original (slow); raises ExportError for anything unusable."""
        ...

    def write_saved_model(self, target: Path) -> None:
        """Write the SavedModel into ``target``, which must not exist yet."""
        ...

    def run_original(
        self, signature_name: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Outputs of the original model, keyed like the exported signature's outputs."""
        ...

    def close(self) -> None: ...


def mtime_version(path: Path) -> int:
    return int(path.stat().st_mtime)
