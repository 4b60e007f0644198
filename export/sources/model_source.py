"""What every kind of model source offers the export pipeline.

A source loads the original artifact, writes it out as a SavedModel, and can
still run the *original* so the parity check compares like with like. The
pipeline never needs to know whether it came from Keras, a TF1 checkpoint or
an existing SavedModel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from export.publish.features import file_sha256


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


def files_sha256(files: Mapping[str, Path]) -> str:
    """One digest over several files: sorted ``label NUL sha256(content) LF`` lines.

    Artifacts that are several files (a checkpoint, a SavedModel directory)
    still get one reproducible source hash for the manifest.
    """
    digest = hashlib.sha256()
    for label in sorted(files):
        digest.update(f"{label}\0{file_sha256(files[label])}\n".encode())
    return digest.hexdigest()


def mtime_version(path: Path) -> int:
    return int(path.stat().st_mtime)
