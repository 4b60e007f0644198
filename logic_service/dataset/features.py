"""The features a logged prediction's version computed, recomputed with that version's files.

The prediction log stores the raw record, not the feature vector (a vector
per row would double a row's size for every model, labelled or not). The
exporter instead runs each row's own version's feature pipeline again: the
feature function the manifest names and the transformer in that version's
``assets.extra`` (hash-checked, trusted types only, as serving loads them), so
retraining sees exactly what that version's graph saw, never today's code.

Time: a feature function that takes a ``now`` argument (as
``features/ctr.py``'s ``derive`` does) is called with the time the request
arrived (the row's ``ts`` less its latency), so ages and durations come out as
they did when the request was served. One without ``now`` that reads the clock
would not be reproducible; docs/dataset.md says so.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from logic_service.manifest import ManifestMissing
from logic_service.settings import LogicSettings
from logic_service.versions.artifacts import VersionArtifacts, load_version


@dataclass(frozen=True)
class Recomputed:
    """One row's features: the named derived values and the graph's input row."""

    derived: str | None  # JSON of the feature function's output
    vector: list[float] | None  # the transformer's row: what the graph received
    problem: str | None  # why there are none (failed request, version gone, ...)


class FeatureReplayer:
    """Loads each version's pipeline once and recomputes features for logged rows."""

    def __init__(self, settings: LogicSettings, model: str) -> None:
        self.settings = settings
        model_settings = settings.model(model)
        if model_settings is None:
            raise ValueError(f"unknown model {model!r}")
        self.model = model_settings
        self._versions: dict[int, VersionArtifacts | str] = {}

    def version(self, version: int) -> VersionArtifacts | str:
        """The version's artifacts, or why they cannot be loaded (said once per version)."""
        if version not in self._versions:
            folder: Path = self.settings.base_path(self.model) / str(version)
            try:
                self._versions[version] = load_version(
                    self.model.name,
                    version,
                    folder,
                    self.model.signature_name,
                    self.settings.features.allow_pickle,
                )
            except ManifestMissing:
                self._versions[version] = (
                    f"version {version} has no manifest: its records are the graph's input "
                    "tensors (or the version was pruned)"
                )
            except Exception as exc:  # a broken version: rows keep no features
                self._versions[version] = f"version {version} cannot be loaded: {exc}"
        return self._versions[version]

    def recompute(
        self, version: int, records: Sequence[Any], moments: Sequence[datetime]
    ) -> list[Recomputed]:
        """Features of ``records`` (raw, as logged) as ``version`` computed them."""
        artifacts = self.version(version)
        if isinstance(artifacts, str):
            return [Recomputed(None, None, artifacts)] * len(records)
        pipeline = artifacts.features
        if pipeline is None:
            reason = "the version has no feature processing: the record is the graph's input"
            return [Recomputed(None, None, reason)] * len(records)
        takes_now = _takes_now(pipeline.function)
        derived: list[dict | None] = []
        problems: list[str | None] = []
        for record, moment in zip(records, moments, strict=True):
            try:
                row = (
                    pipeline.function(record, now=moment)
                    if takes_now
                    else pipeline.function(record)
                )
                derived.append(row)
                problems.append(None)
            except Exception as exc:
                derived.append(None)
                problems.append(f"the feature function failed: {type(exc).__name__}: {exc}")
        good = [row for row in derived if row is not None]
        matrix = pipeline.transform(good) if good else np.empty((0, 0))
        out: list[Recomputed] = []
        position = 0
        for row, problem in zip(derived, problems, strict=True):
            if row is None:
                out.append(Recomputed(None, None, problem))
                continue
            vector = matrix[position].astype(float).tolist()
            position += 1
            out.append(Recomputed(json.dumps(row, default=str), vector, None))
        return out


def _takes_now(function: Any) -> bool:
    try:
        return "now" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
