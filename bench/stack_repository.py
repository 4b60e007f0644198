"""The demo model and its artifacts, copied into the benchmark's own model repositories.

Every system serves the same thing: the demo click-through model of
``.demo/model.h5`` with its fitted transformer ``.demo/ctr_features.skops``,
and the published version of it in ``serving_models/ctr/`` (the version whose
manifest names that very ``.h5`` by sha256, so the graph tier and the Flask
recipe run the same weights). The benchmark never writes into
``serving_models/``: each graph tier reads a copy in the run's work directory,
and new versions for the hot-reload and memory measurements are published
there, atomically (copy to ``.tmp-*``, then rename), as ``python -m export``
publishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

MANIFEST = Path("assets.extra") / "tierkit.json"


class DemoMissing(SystemExit):
    """The demo model is not trained or not published: say which command fixes it."""


@dataclass(frozen=True)
class DemoModel:
    name: str
    version: int
    version_dir: Path  # the published SavedModel version (read only)
    model_h5: Path  # copies in the work directory, for the Flask recipe
    transformer: Path
    sample_row: list[float]  # one transformed row (for graph-tier-only calls)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_demo(repo_root: Path, workdir: Path, name: str = "ctr") -> DemoModel:
    """The demo model's files, checked to belong together, copied under ``workdir``."""
    demo = repo_root / ".demo"
    model_h5, transformer = demo / "model.h5", demo / "ctr_features.skops"
    sample = demo / "ctr_sample.json"
    fix = "run `.venv/bin/python scripts/publish_demo.py` from the repository root"
    missing = [p for p in (model_h5, transformer, sample) if not p.is_file()]
    if missing:
        raise DemoMissing(f"bench stack: {', '.join(map(str, missing))} missing: {fix}")
    base = repo_root / "serving_models" / name
    wanted = _sha256(model_h5)
    candidates = []
    for version_dir in base.iterdir() if base.is_dir() else ():
        manifest = version_dir / MANIFEST
        if not (version_dir.name.isdigit() and manifest.is_file()):
            continue
        try:
            source = json.loads(manifest.read_text()).get("source", {})
        except (OSError, ValueError):
            continue
        if source.get("sha256") == wanted:
            candidates.append(version_dir)
    if not candidates:
        raise DemoMissing(
            f"bench stack: no version in {base} was exported from {model_h5} "
            f"(sha256 {wanted[:12]}...): {fix}"
        )
    version_dir = max(candidates, key=lambda p: int(p.name))
    recipe = workdir / "recipe"
    recipe.mkdir(parents=True, exist_ok=True)
    row = json.loads(sample.read_text())["inputs"]["features"][0]
    return DemoModel(
        name=name,
        version=int(version_dir.name),
        version_dir=version_dir,
        model_h5=Path(shutil.copy2(model_h5, recipe / model_h5.name)),
        transformer=Path(shutil.copy2(transformer, recipe / transformer.name)),
        sample_row=[float(x) for x in row],
    )


def publish_copy(source: Path, base: Path, version: int) -> Path:
    """Publish a copy of the version directory ``source`` as ``base/<version>`` atomically.

    The manifest names its version and the logic tier refuses a manifest found
    under another number, so the copy's manifest is rewritten before the rename.
    """
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    manifest = staging / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        data["version"] = version
        manifest.write_text(json.dumps(data, indent=2))
    target = base / str(version)
    staging.rename(target)
    return target


def model_repository(demo: DemoModel, root: Path) -> Path:
    """A fresh repository under ``root`` holding the demo version; returns the model's dir."""
    base = root / "serving_models" / demo.name
    publish_copy(demo.version_dir, base, demo.version)
    return base


def write_models_config(path: Path, name: str, base: Path, policy: str) -> Path:
    """A ModelServerConfig with one model; ``policy`` is the body of model_version_policy."""
    path.write_text(
        "model_config_list {\n  config {\n"
        f'    name: "{name}"\n    base_path: "{base}"\n'
        '    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ {policy} }}\n  }}\n}}\n"
    )
    return path
