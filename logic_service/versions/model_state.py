"""One model as the registry knows it: graph-tier states, artifacts, and what follows from them.

``ModelRegistry`` (``registry.py``) does the I/O (status reads, artifact loads)
on the event loop; this state and its rules have none but a listing of the
model's folder: which versions are wanted in memory (served, labelled, or
about to be), which are ready to route to (AVAILABLE on the graph tier and
artifacts loaded), and the ``RoutableModel`` published from them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from logic_service.graph.client import VersionStatus
from logic_service.manifest import MANIFEST_PATH, ManifestError, read_manifest
from logic_service.settings import ModelSettings
from logic_service.versions.artifacts import VersionArtifacts
from logic_service.versions.routable import RoutableModel

# the registry's name: operators filter its lines by it
log = logging.getLogger("logic_service.versions.registry")


@dataclass(frozen=True)
class VersionView:
    graph: dict[int, VersionStatus]
    labels: dict[str, int]
    published: set[int] | None  # None: the folder cannot be listed
    refused: dict[int, str]  # artifacts that failed to load in the logic tier
    ready: tuple[int, ...]


@dataclass
class ModelState:
    settings: ModelSettings
    base_path: Path
    configured: bool = True  # named in logic.yaml (else discovered)
    served: bool = False  # had a version ready once (a discovered model counts for readiness)
    graph: dict[int, VersionStatus] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    problem: str = ""  # why the graph tier has nothing for this model, if so
    artifacts: dict[int, VersionArtifacts] = field(default_factory=dict)
    loading: dict[int, asyncio.Task] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    routable: RoutableModel | None = None

    def ready_versions(self) -> list[int]:
        return list(self.routable.ready_versions) if self.routable is not None else []

    def describe(self) -> dict:
        """The admin API's and the dashboard's view of this model."""
        return {
            "ready_versions": self.ready_versions(),
            "graph": {str(v): s.state for v, s in sorted(self.graph.items())},
            "labels": dict(self.labels),
            "loading": sorted(self.loading),
            "failed": {str(v): e for v, e in sorted(self.failed.items())},
            "configured": self.configured,  # named in logic.yaml (else discovered)
            "problem": self.problem or None,
            # versions exported with --quantize: {version: mode} (from the manifest)
            "quantized": {
                str(v): a.quantization
                for v, a in sorted(self.artifacts.items())
                if a.quantization is not None
            },
        }

    def newest_uses_skops(self) -> bool:
        """Whether the newest version on disk loads a skops transformer (its manifest)."""
        for version in self.on_disk()[-1:]:
            try:
                manifest = read_manifest(self.base_path / str(version), self.settings.name, version)
            except ManifestError:
                return False  # its load says why, with its version
            return manifest.features is not None and manifest.features.format == "skops"
        return False

    def set_problem(self, problem: str) -> None:
        if problem and problem != self.problem:
            log.warning("model %s: %s", self.settings.name, problem)
        self.problem = problem

    def available(self) -> list[int]:
        return sorted(v for v, s in self.graph.items() if s.state == "AVAILABLE")

    def on_disk(self) -> list[int]:
        try:
            entries = list(self.base_path.iterdir())
        except OSError:
            return []
        return sorted(
            int(p.name) for p in entries if p.name.isdigit() and (p / MANIFEST_PATH).is_file()
        )

    def wanted(self) -> set[int]:
        """Versions whose artifacts we want in memory: served, labelled, or about to be."""
        available = self.available()
        newest = available[-1] if available else -1
        coming = {v for v, s in self.graph.items() if s.state in ("START", "LOADING")}
        coming |= {v for v in self.on_disk() if v > newest}
        return set(available) | coming | set(self.labels.values())

    def prune(self) -> None:
        wanted = self.wanted()
        for version in [v for v in self.artifacts if v not in wanted]:
            del self.artifacts[version]
            log.info("model %s: dropped artifacts of version %d", self.settings.name, version)
        for version in [v for v in self.failed if v not in wanted]:
            del self.failed[version]

    def publish(self) -> None:
        ready = tuple(v for v in self.available() if v in self.artifacts)
        labels = {k: v for k, v in self.labels.items() if v in ready}
        current = self.routable
        if current is None or current.ready_versions != ready or dict(current.labels) != labels:
            log.info(
                "model %s: serving versions %s%s",
                self.settings.name,
                list(ready) or "none",
                f", labels {labels}" if labels else "",
            )
            self.routable = RoutableModel(self.settings.name, ready, labels)
        if ready:
            self.served = True
