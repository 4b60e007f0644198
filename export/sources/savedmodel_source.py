"""Publish an existing SavedModel directory (TF1 builder or TF2 ``tf.saved_model.save``).

The directory is validated by loading it exactly as the graph tier will
(session loader, ``serve`` tag) and copied as is; only the files this tool
manages in ``assets.extra/`` (manifest, warmup, feature artifact) are left
behind, because this export writes fresh ones that match this version.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.checks.signatures import read_saved_model
from export.digests import files_sha256
from export.errors import ExportError
from export.sources.model_source import mtime_version

_MANAGED_EXTRA = {
    "tierkit.json",
    "tf_serving_warmup_requests",
    "features.skops",
    "features.pkl",
}


class SavedModelSource:
    kind = "savedmodel"

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ExportError(f"{path}: no such directory")
        self.saved_model = read_saved_model(path)  # refuses files and non-SavedModel dirs
        self.path = path
        self._model: Any = None

    def _graph_file(self) -> Path:
        binary = self.path / "saved_model.pb"
        return binary if binary.is_file() else self.path / "saved_model.pbtxt"

    def _files(self) -> dict[str, Path]:
        return {
            path.relative_to(self.path).as_posix(): path
            for path in sorted(self.path.rglob("*"))
            if path.is_file()
            and not (path.parent == self.path / "assets.extra" and path.name in _MANAGED_EXTRA)
        }

    def default_version(self) -> int:
        return mtime_version(self._graph_file())

    def description(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "sha256": files_sha256(self._files())}

    def load(self) -> None:
        import tensorflow as tf

        from export.checks.session_loader import SessionModel

        tag_sets = [sorted(m.meta_info_def.tags) for m in self.saved_model.meta_graphs]
        if ["serve"] not in tag_sets:
            found = "; ".join(",".join(tags) or "(none)" for tags in tag_sets)
            raise ExportError(
                f"{self.path}: no meta graph tagged 'serve' (TF Serving loads only that one); "
                f"tag sets found: {found}"
            )
        try:
            self._model = SessionModel(self.path)
        except (tf.errors.OpError, RuntimeError, ValueError, OSError) as exc:
            message = str(exc).strip().splitlines()[0]
            raise ExportError(f"{self.path}: cannot load the SavedModel: {message}") from exc
        if not self._model.signatures:
            raise ExportError(f"{self.path}: the SavedModel has no signatures to serve")

    def write_saved_model(self, target: Path) -> None:
        def skip_managed(directory: str, names: list[str]) -> set[str]:
            if Path(directory) == self.path / "assets.extra":
                return {name for name in names if name in _MANAGED_EXTRA}
            return set()

        try:
            shutil.copytree(self.path, target, ignore=skip_managed)
        except (OSError, shutil.Error) as exc:
            raise ExportError(f"cannot copy {self.path} to {target}: {exc}") from exc

    def run_original(
        self, signature_name: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return self._model.run(signature_name, inputs)

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
