"""Atomic publishing of one version directory into the model repository.

Both tiers poll ``<repo>/<name>/`` for integer directories and load what they
find, so a version must never be visible half-written. The export builds into
``<repo>/<name>/.tmp-<version>-<pid>/`` (ignored by the servers: not an integer)
and renames it into place, which is atomic on one filesystem. On any failure
the temporary directory goes away, and a model directory the export created
for nothing is removed too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from types import TracebackType

from export.errors import ExportError


class VersionSlot:
    """Reserve ``<repo>/<name>/<version>``; build in a tmp dir; publish by rename."""

    def __init__(self, repo: Path, name: str, version: int, force: bool) -> None:
        self.repo = repo
        self.model_dir = repo / name
        self.version = version
        self.force = force
        self.final_dir = self.model_dir / str(version)
        self.tmp_dir = self.model_dir / f".tmp-{version}-{os.getpid()}"
        self._created: list[Path] = []

    def check(self) -> None:
        """Refuse early: an existing version, or a repository that cannot be written."""
        if self.final_dir.exists() and not self.force:
            raise ExportError(
                f"version {self.version} already exists at {self.final_dir}; pass --force to "
                "replace it or --version N to publish another"
            )
        for path in (self.repo, self.model_dir):
            if path.exists() and not path.is_dir():
                raise ExportError(
                    f"repository {self.repo} is not writable: {path} is not a directory"
                )
        existing = self.model_dir if self.model_dir.exists() else self.repo
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ExportError(f"repository {self.repo} is not writable ({existing})")

    def __enter__(self) -> VersionSlot:
        self.check()
        missing = [p for p in (self.model_dir, *self.model_dir.parents) if not p.exists()]
        try:
            self.model_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"repository {self.repo} is not writable: {exc}") from exc
        self._created = missing
        if self.tmp_dir.exists():  # left by a killed export with our pid: not ours to keep
            shutil.rmtree(self.tmp_dir)
        return self

    def publish(self) -> Path:
        """Move the finished tmp dir into place (replacing the old version with --force)."""
        if not self.final_dir.exists():
            try:
                os.rename(self.tmp_dir, self.final_dir)
            except OSError as exc:
                raise ExportError(f"cannot publish {self.final_dir}: {exc}") from exc
            return self.final_dir
        if not self.force:
            raise ExportError(f"version {self.version} appeared at {self.final_dir} meanwhile")
        retired = self.model_dir / f".old-{self.version}-{os.getpid()}"
        os.rename(self.final_dir, retired)
        try:
            os.rename(self.tmp_dir, self.final_dir)
        except OSError as exc:
            os.rename(retired, self.final_dir)
            raise ExportError(f"cannot publish {self.final_dir}: {exc}") from exc
        shutil.rmtree(retired, ignore_errors=True)
        return self.final_dir

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if exc_type is not None:
            for path in self._created:  # deepest first; only while still empty
                with contextlib.suppress(OSError):
                    path.rmdir()
