"""``--feature-module``: the feature code travels with the version, checked end to end (issue 29).

A real loan model (Keras .h5, skops transformer, feature module) is exported
in-process; every refusal must leave the repository as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.loan_model import FEATURE_MODULE, LoanFiles, write_loan_model

from export.publish.feature_code import CODE_FILE

VERSION = 1_796_500_000


@pytest.fixture(scope="module")
def loan(tmp_path_factory: pytest.TempPathFactory) -> LoanFiles:
    return write_loan_model(tmp_path_factory.mktemp("loan"))


def _export(run_export, loan: LoanFiles, repo: Path, module: Path, *extra):
    return run_export(
        "keras", loan.model, "--name", "loan", "--repo", repo, "--version", VERSION,
        "--features", loan.features, "--feature-module", module, *extra,
    )


def _module(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "feats.py"
    path.write_text(source)
    return path


def test_the_feature_module_is_copied_with_its_sha256_and_checked_end_to_end(
    loan, tmp_path, run_export
):
    result = _export(run_export, loan, tmp_path / "repo", loan.module)
    assert result.code == 0, result.err
    extra = tmp_path / "repo" / "loan" / str(VERSION) / "assets.extra"
    copied = (extra / CODE_FILE).read_bytes()
    assert copied == FEATURE_MODULE.encode()
    manifest = json.loads((extra / "tierkit.json").read_text())
    features = manifest["features"]
    assert features["code"] == {"file": CODE_FILE, "sha256": hashlib.sha256(copied).hexdigest()}
    assert features["function"] == "derive"
    assert manifest["input_schema"]["required"][0] == "age"
    assert manifest["example_request"]["employment"] == "salaried"
    (score,) = manifest["parity"]["end_to_end"]["outputs"]["default_prob"]
    assert 0.0 < score[0] < 1.0
    assert manifest["parity"]["end_to_end"]["max_abs_diff"] <= 1e-5
    assert "end-to-end ok: default_prob 0." in result.err


def test_the_logic_tier_serves_the_copy_not_the_file_exported_from(loan, tmp_path, run_export):
    from logic_service.versions.artifacts import load_version

    module = _module(tmp_path, FEATURE_MODULE)
    assert _export(run_export, loan, tmp_path / "repo", module).code == 0
    module.write_text(FEATURE_MODULE.replace('"home": record["home"]', '"home": "own"'))
    directory = tmp_path / "repo" / "loan" / str(VERSION)
    artifacts = load_version("loan", VERSION, directory, "serving_default", trusted=[tmp_path])
    example = artifacts.manifest.example_request
    assert artifacts.features.function(example)["home"] == "rent"


BROKEN = {
    "import fails": (
        FEATURE_MODULE + "\nimport not_installed_anywhere\n",
        "--feature-module",
        "importing it failed: ModuleNotFoundError",
    ),
    "derive raises on the example": (
        FEATURE_MODULE.replace("income = float(", "income = 1 / 0 + float("),
        "end-to-end check failed at the feature function on the example record",
        "ZeroDivisionError",
    ),
    "a derived column is missing": (
        FEATURE_MODULE.replace('"home": record["home"],', ""),
        "end-to-end check failed at the transformer on the derived features",
        "home",
    ),
    "the features are not finite": (
        FEATURE_MODULE.replace('"age": float(record["age"])', '"age": float("nan")'),
        "end-to-end check failed at the transformer on the derived features",
        "not finite as DT_FLOAT",
    ),
    "no example record": (
        FEATURE_MODULE.replace("EXAMPLE_REQUEST = {", "_UNUSED = {"),
        "--feature-module",
        "define EXAMPLE_REQUEST in it or pass --example FILE.json",
    ),
    "no derive": (
        FEATURE_MODULE.replace("def derive(", "def derive_features("),
        "--feature-module",
        "has no callable 'derive'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_version_serving_could_not_run_is_never_published(
    case, loan, tmp_path, run_export, leftovers
):
    source, starts, detail = BROKEN[case]
    repo = tmp_path / "repo"
    result = _export(run_export, loan, repo, _module(tmp_path, source))
    assert result.code == 2, result.err
    assert result.error.startswith(f"error: {starts}"), result.error
    assert detail in result.error
    assert not (repo / "loan" / str(VERSION)).exists()
    assert leftovers(repo) == []


def test_an_example_file_replaces_the_modules_example(loan, tmp_path, run_export):
    example = tmp_path / "example.json"
    example.write_text(json.dumps({"age": 60, "income": 1, "loan_amount": 5, "term_months": 12,
                                   "employment": "unemployed", "home": "own"}))
    result = _export(run_export, loan, tmp_path / "repo", loan.module, "--example", example)
    assert result.code == 0, result.err
    manifest = json.loads(
        (tmp_path / "repo/loan" / str(VERSION) / "assets.extra/tierkit.json").read_text()
    )
    assert manifest["example_request"]["age"] == 60


def test_feature_module_and_feature_function_exclude_each_other(loan, tmp_path, run_export):
    result = _export(
        run_export, loan, tmp_path / "repo", loan.module, "--feature-function", "json:dumps"
    )
    assert result.code == 2
    assert "--feature-module and --feature-function exclude each other" in result.error
    result = run_export(
        "keras", loan.model, "--name", "loan", "--repo", tmp_path / "r",
        "--feature-module", loan.module,
    )
    assert result.code == 2
    assert "--feature-module needs --features FILE" in result.error
