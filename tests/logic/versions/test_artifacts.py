from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.ctr_artifacts import fitted_transformer, synthetic_records, write_assets

from logic_service.features import ctr
from logic_service.inputs.compiled_transformer import compile_transformer
from logic_service.inputs.feature_pipeline import ArtifactError, RecordsRejected
from logic_service.manifest import ManifestError, ManifestMissing
from logic_service.versions.artifacts import load_version


@pytest.fixture(scope="module")
def transformer() -> Any:
    return fitted_transformer(seed=1)


def _version(tmp_path: Path, transformer: Any, version: int = 7, **kw: Any) -> Path:
    directory = tmp_path / "ctr" / str(version)
    write_assets(directory, "ctr", version, transformer, **kw)
    return directory


def test_loaded_features_equal_sklearn_on_the_same_records(tmp_path: Path, transformer) -> None:
    artifacts = load_version("ctr", 7, _version(tmp_path, transformer), "serving_default")
    records = [*synthetic_records(50, seed=9), ctr.EXAMPLE_REQUEST]
    paths = [f"records[{i}]" for i in range(len(records))]
    assert artifacts.validate(records, paths) == []
    inputs = artifacts.inputs(records, paths)
    expected = transformer.transform(pd.DataFrame([ctr.derive(r) for r in records]))
    assert list(inputs) == ["features"]
    assert inputs["features"].dtype == np.float32
    np.testing.assert_array_equal(inputs["features"], expected.astype(np.float32))
    assert artifacts.features is not None and artifacts.features.compiled is not None


def test_compiled_transformer_matches_sklearn_bit_for_bit(transformer) -> None:
    compiled = compile_transformer(transformer)
    assert compiled is not None
    rows = [ctr.derive(r) for r in synthetic_records(200, seed=3)]
    rows[5] = rows[5] | {"device_brand": "NEVER-SEEN", "country_id": "999"}
    rows[6] = rows[6] | {"screen_area": None}
    np.testing.assert_array_equal(
        compiled.transform(rows), transformer.transform(pd.DataFrame(rows))
    )


def test_unknown_transformers_fall_back_to_sklearn() -> None:
    from sklearn.preprocessing import MinMaxScaler

    assert compile_transformer(MinMaxScaler().fit([[0.0], [1.0]])) is None


def test_a_swapped_transformer_file_is_refused(tmp_path: Path, transformer) -> None:
    directory = _version(tmp_path, transformer)
    skops_file = directory / "assets.extra" / "features.skops"
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        load_version("ctr", 7, directory, "serving_default")


def test_types_outside_trusted_types_are_refused(tmp_path: Path, transformer) -> None:
    directory = _version(tmp_path, transformer, trusted=[])
    with pytest.raises(ArtifactError, match="skops refused"):
        load_version("ctr", 7, directory, "serving_default")


def test_pickle_is_refused_unless_allowed(tmp_path: Path, transformer) -> None:
    import hashlib

    directory = _version(tmp_path, transformer)
    data = pickle.dumps(transformer)
    (directory / "assets.extra" / "features.pkl").write_bytes(data)
    manifest_path = directory / "assets.extra" / "tierkit.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["features"] |= {
        "transformer": "features.pkl",
        "format": "pickle",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="pickle transformers are refused"):
        load_version("ctr", 7, directory, "serving_default")
    assert load_version("ctr", 7, directory, "serving_default", allow_pickle=True).features


def _copied_version(tmp_path: Path, transformer: Any) -> Path:
    """ctr/8, a copy of ctr/7: SavedModel-shaped files, then the manifest written for 7."""
    original = tmp_path / "ctr" / "7"
    (original / "variables").mkdir(parents=True)
    (original / "saved_model.pb").write_bytes(b"graph-bytes")
    (original / "variables" / "variables.index").write_bytes(b"index-bytes")
    write_assets(original, "ctr", 7, transformer)
    return Path(shutil.copytree(original, tmp_path / "ctr" / "8"))


def test_a_version_copied_by_hand_serves_with_the_manifest_it_carries(
    tmp_path: Path, transformer
) -> None:
    copy = _copied_version(tmp_path, transformer)
    artifacts = load_version("ctr", 8, copy, "serving_default")
    assert artifacts.manifest is not None
    assert (artifacts.manifest.version, artifacts.manifest.copied_from) == (8, 7)
    records = [ctr.EXAMPLE_REQUEST]
    assert artifacts.inputs(records, ["records[0]"])["features"].shape[0] == 1
    original = load_version("ctr", 7, tmp_path / "ctr" / "7", "serving_default").manifest
    assert original is not None and original.copied_from is None


def test_a_copy_whose_graph_files_differ_is_refused_naming_them(
    tmp_path: Path, transformer
) -> None:
    copy = _copied_version(tmp_path, transformer)
    (copy / "saved_model.pb").write_bytes(b"a retrained graph")
    with pytest.raises(
        ManifestError, match=r"written for ctr/7, found in ctr/8; .*changed saved_model.pb"
    ):
        load_version("ctr", 8, copy, "serving_default")
    (copy / "saved_model.pb").write_bytes(b"graph-bytes")
    (copy / "variables" / "variables.data-00000-of-00001").write_bytes(b"more")
    with pytest.raises(
        ManifestError, match=re.escape("not listed variables/variables.data-00000-of-00001")
    ):
        load_version("ctr", 8, copy, "serving_default")
    (copy / "variables" / "variables.index").unlink()
    with pytest.raises(ManifestError, match=re.escape("missing variables/variables.index")):
        load_version("ctr", 8, copy, "serving_default")


def test_a_copy_into_another_model_is_refused(tmp_path: Path, transformer) -> None:
    other = Path(shutil.copytree(_copied_version(tmp_path, transformer), tmp_path / "fraud" / "7"))
    with pytest.raises(ManifestError, match=r"written for ctr/7, found in fraud/7$"):
        load_version("fraud", 7, other, "serving_default")


def test_manifest_problems_are_named(tmp_path: Path, transformer) -> None:
    directory = _version(tmp_path, transformer)
    with pytest.raises(ManifestError, match="written for ctr/7, found in ctr/8"):
        load_version("ctr", 8, directory, "serving_default")
    with pytest.raises(ArtifactError, match="no signature 'other'"):
        load_version("ctr", 7, directory, "other")
    manifest_path = directory / "assets.extra" / "tierkit.json"
    manifest_path.write_text(manifest_path.read_text().replace("tierkit.manifest/1", "v2"))
    with pytest.raises(ManifestError, match="format must be"):
        load_version("ctr", 7, directory, "serving_default")
    with pytest.raises(ManifestMissing):
        load_version("ctr", 9, tmp_path / "ctr" / "9", "serving_default")


def test_feature_function_failures_name_the_record(tmp_path: Path, transformer) -> None:
    artifacts = load_version("ctr", 7, _version(tmp_path, transformer), "serving_default")
    bad = ctr.EXAMPLE_REQUEST | {"birthday": "1995-13-45T00:00:00"}  # matches the pattern
    paths = ["records[0]", "records[1]"]
    assert artifacts.validate([ctr.EXAMPLE_REQUEST, bad], paths) == []
    with pytest.raises(RecordsRejected) as caught:
        artifacts.inputs([ctr.EXAMPLE_REQUEST, bad], paths)
    assert caught.value.problems == [
        "records[1]: rejected by the feature function: ValueError: month must be in 1..12"
    ]
