"""Feature code that travels with its version: run only when trusted and unchanged (issue 29).

Each version is a real folder: the demo's feature module copied in as
``assets.extra/features.py``, a fitted skops transformer and a manifest, as
``python -m export --feature-module`` writes them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.ctr_artifacts import fitted_transformer, write_assets

from logic_service.features import ctr
from logic_service.inputs.feature_code import MODULE_PREFIX
from logic_service.inputs.feature_pipeline import ArtifactError
from logic_service.versions.artifacts import load_version

CODE = Path(ctr.__file__).read_bytes()


@pytest.fixture(scope="module")
def transformer() -> Any:
    return fitted_transformer(seed=1)


def _version(root: Path, transformer: Any, version: int = 7, **kw: Any) -> Path:
    directory = root / "ctr" / str(version)
    write_assets(directory, "ctr", version, transformer, code=kw.pop("code", CODE), **kw)
    return directory


def _load(directory: Path, trusted: list[Path] | None) -> Any:
    version = int(directory.name)
    return load_version("ctr", version, directory, "serving_default", trusted=trusted)


def test_the_copied_code_runs_under_a_module_of_its_own(tmp_path: Path, transformer) -> None:
    artifacts = _load(_version(tmp_path, transformer), [tmp_path])
    function = artifacts.features.function
    assert function.__module__.startswith(f"{MODULE_PREFIX}_ctr_7_")
    assert function.__module__ in sys.modules
    assert function is not ctr.derive  # the copy, not the installed module
    # it computes what the installed module computes for the same record
    assert function(ctr.EXAMPLE_REQUEST) == ctr.derive(ctr.EXAMPLE_REQUEST)
    assert Path(function.__code__.co_filename) == tmp_path / "ctr/7/assets.extra/features.py"


def test_two_versions_keep_their_own_code(tmp_path: Path, transformer) -> None:
    """Editing the feature code for version 8 changes nothing of version 7 (finding 3)."""
    changed = CODE.replace(
        b'"device_brand": device.split("-", 1)[0].strip().upper() or "UNKNOWN"',
        b'"device_brand": "EDITED"',
    )
    assert changed != CODE
    old = _load(_version(tmp_path, transformer, 7), [tmp_path])
    new = _load(_version(tmp_path, transformer, 8, code=changed), [tmp_path])
    assert old.features.function(ctr.EXAMPLE_REQUEST)["device_brand"] == "TECNO"
    assert new.features.function(ctr.EXAMPLE_REQUEST)["device_brand"] == "EDITED"


def test_a_tampered_feature_module_is_refused_naming_both_digests(
    tmp_path: Path, transformer
) -> None:
    directory = _version(tmp_path, transformer)
    code = directory / "assets.extra" / "features.py"
    code.write_bytes(CODE + b"\nimport os  # added after export\n")
    manifest = json.loads((directory / "assets.extra" / "tierkit.json").read_text())
    with pytest.raises(ArtifactError) as refused:
        _load(directory, [tmp_path])
    message = str(refused.value)
    assert "does not match the manifest's" in message
    assert manifest["features"]["code"]["sha256"] in message
    assert str(code) in message


def test_code_outside_the_trusted_repositories_is_refused(tmp_path: Path, transformer) -> None:
    """A version folder that is a symlink out of the repository runs no code."""
    elsewhere = _version(tmp_path / "elsewhere", transformer)
    repo = tmp_path / "repo"
    (repo / "ctr").mkdir(parents=True)
    (repo / "ctr" / "7").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ArtifactError, match="not inside a trusted repository"):
        _load(repo / "ctr" / "7", [repo])
    with pytest.raises(ArtifactError, match=r"trusted: none; set features.trusted_repositories"):
        _load(elsewhere, [])  # an empty list trusts no folder
    assert _load(elsewhere, [tmp_path / "elsewhere"]).features is not None


def test_a_module_that_fails_to_import_is_refused_with_its_error(
    tmp_path: Path, transformer
) -> None:
    broken = CODE + b"\nimport lightgbm_is_not_installed_here\n"
    with pytest.raises(ArtifactError) as refused:
        _load(_version(tmp_path, transformer, code=broken), [tmp_path])
    assert "importing the feature code failed: ModuleNotFoundError" in str(refused.value)
    assert not any("lightgbm" in name for name in sys.modules)


def test_the_example_request_runs_when_the_version_loads(tmp_path: Path, transformer) -> None:
    """Parity at load: a version whose own example no longer runs here is refused."""
    ok = _load(_version(tmp_path, transformer, 7, example=ctr.EXAMPLE_REQUEST), [tmp_path])
    assert ok.manifest.example_request == ctr.EXAMPLE_REQUEST
    raising = CODE.replace(
        b"    birthday = parse_timestamp(", b"    raise KeyError('x')\n    b = ("
    )
    broken = _version(tmp_path, transformer, 8, code=raising, example=ctr.EXAMPLE_REQUEST)
    with pytest.raises(ArtifactError, match="does not run through the features here"):
        _load(broken, [tmp_path])
    bad_example = {**ctr.EXAMPLE_REQUEST, "userId": -1}
    with pytest.raises(ArtifactError, match="example_request fails the input schema here"):
        _load(_version(tmp_path, transformer, 9, example=bad_example), [tmp_path])


def test_a_manifest_whose_function_does_not_fit_its_code_is_refused(
    tmp_path: Path, transformer
) -> None:
    from logic_service.manifest import ManifestError

    directory = _version(tmp_path, transformer)
    path = directory / "assets.extra" / "tierkit.json"
    manifest = json.loads(path.read_text())
    manifest["features"]["function"] = "logic_service.features.ctr:derive"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="name of an attribute of the copied code"):
        _load(directory, [tmp_path])
