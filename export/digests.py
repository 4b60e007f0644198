"""sha256 digests of files, as the manifest and the sources' descriptions record them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(files: Mapping[str, Path]) -> str:
    """One digest over several files: sorted ``label NUL sha256(content) LF`` lines.

    Artifacts that are several files (a checkpoint, a SavedModel directory)
    still get one reproducible source hash for the manifest.
    """
    digest = hashlib.sha256()
    for label in sorted(files):
        digest.update(f"{label}\0{file_sha256(files[label])}\n".encode())
    return digest.hexdigest()
