"""The official JSON-Schema-Test-Suite, read from the ``jsonschema`` sdist at test time.

The sdist carries the suite (``json/tests/<draft>/*.json``); it is downloaded
once with pip into ``.cache/`` (git-ignored, package registries are all CI
reaches) and read from the archive, never copied into the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.processes import ROOT

SDIST_VERSION = "4.26.0"  # jsonschema's sdist; its json/ folder is the suite of that release
CACHE = ROOT / ".cache" / "json-schema-test-suite"


def sdist() -> Path:
    archive = CACHE / f"jsonschema-{SDIST_VERSION}.tar.gz"
    if archive.is_file():
        return archive
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--no-binary", ":all:", "--no-deps", "--dest", str(CACHE),
            f"jsonschema=={SDIST_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    if done.returncode != 0 or not archive.is_file():
        raise AssertionError(
            f"cannot download the jsonschema {SDIST_VERSION} sdist (the JSON-Schema-Test-Suite) "
            f"with pip: {done.stderr.strip()[-800:]}"
        )
    return archive


def cases(draft: str = "draft2020-12") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(file name, its groups) for every required test file of ``draft`` (not ``optional/``)."""
    marker = f"/json/tests/{draft}/"
    with tarfile.open(sdist()) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            name = member.name
            if marker not in name or not name.endswith(".json"):
                continue
            relative = name.split(marker, 1)[1]
            if "/" in relative:  # optional/: not required of an implementation
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            yield relative, json.load(handle)
