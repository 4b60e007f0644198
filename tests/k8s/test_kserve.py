"""The kserve overlay's InferenceService against KServe's own published types, and its
transformer's start script against the arguments KServe gives a transformer.

The types come from the `kserve` PyPI package (tools-requirements.txt) at test
time: kserve_types.py walks the object through ``kserve.models.V1beta1*`` and
the `kubernetes` client's models they embed, in the tools virtualenv.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from k8s_manifests import ROOT, find, render
from k8s_tools import REQUIREMENTS, tools_python
from packaging.requirements import Requirement

from logic_service.settings import LogicSettings, read_yaml

VALIDATOR = Path(__file__).with_name("kserve_types.py")


def _validate(objects: list[dict[str, Any]]) -> dict[str, Any]:
    run = subprocess.run(
        [str(tools_python()), str(VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _isvc() -> dict[str, Any]:
    return find(render("overlays/kserve"), "InferenceService", "ctr")


def test_the_kserve_pin_is_the_bench_extras() -> None:
    """One KServe release for the benchmark's peer and for these types."""
    pins = [
        Requirement(line)
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (ours,) = [r for r in pins if r.name == "kserve"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (bench,) = [
        Requirement(r)
        for r in project["project"]["optional-dependencies"]["bench"]
        if r.startswith("kserve")
    ]
    (version,) = [s.version for s in ours.specifier]
    assert bench.specifier.contains(version), f"kserve {version} is outside bench's {bench}"


def _broken(change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_isvc())
    change(obj["spec"])
    return obj


# Deliberate mistakes, each with what the validator must say about it.
BROKEN = {
    "canaryTrafficPrecent: not a field of V1beta1PredictorSpec": lambda s: s["predictor"].update(
        canaryTrafficPrecent=10
    ),
    "minReplicas: expected int, got str": lambda s: s["predictor"].update(minReplicas="2"),
    "storageUrl: not a field of V1beta1ModelSpec": lambda s: s["predictor"]["model"].update(
        storageUrl="pvc://x/y"
    ),
    "periodSecond: not a field of V1Probe": lambda s: s["transformer"]["containers"][0][
        "readinessProbe"
    ].update(periodSecond=5),
    "containers[0]: V1Container": lambda s: s["transformer"]["containers"][0].pop("name"),
    "Invalid value for `predictor`, must not be `None`": lambda s: s.pop("predictor"),
}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Any]:
    """One run of the validator (importing kserve takes seconds): the real object first."""
    return _validate([_isvc(), *(_broken(change) for change in BROKEN.values())])


def test_inference_service_is_valid_for_kserve_0_21(verdicts: dict[str, Any]) -> None:
    assert verdicts["kserve"].startswith("0.21."), verdicts
    assert verdicts["problems"][0] == [], "\n".join(verdicts["problems"][0])


def test_a_broken_inference_service_fails(verdicts: dict[str, Any]) -> None:
    """Each deliberate mistake is refused, and named by its path."""
    for expected, problems in zip(BROKEN, verdicts["problems"][1:], strict=True):
        assert any(expected in p for p in problems), (expected, problems)


def test_transformer_and_predictor_agree_on_the_model() -> None:
    """The transformer reads the same storage URI the predictor serves, from /mnt/models."""
    isvc = _isvc()
    uri = isvc["spec"]["predictor"]["model"]["storageUri"]
    (transformer,) = isvc["spec"]["transformer"]["containers"]
    assert transformer["name"] == "kserve-container"  # the name KServe gives its args to
    env = {e["name"]: e for e in transformer["env"]}
    assert env["STORAGE_URI"]["value"] == uri
    assert env["TIERKIT_GRAPH__PROTOCOL"]["value"] == "rest"  # the predictor's REST port
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] == "tensorflow"
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "kserve-tensorflow-serving"


def _run_start_script(tmp_path: Path, *kserve_args: str) -> tuple[int, dict[str, str], str]:
    """The transformer's command with KServe's arguments; `python` replaced by a recorder."""
    (transformer,) = _isvc()["spec"]["transformer"]["containers"]
    command = transformer["command"]
    assert command[:2] == ["/bin/sh", "-c"], command
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    recorder = fake / "python"
    recorder.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD.args"\nenv | grep "^TIERKIT_" > "$RECORD.env"\n'
    )
    recorder.chmod(0o755)
    env = {e["name"]: e["value"] for e in transformer["env"] if "value" in e}
    record = tmp_path / "record"
    run = subprocess.run(
        [*command, *kserve_args],
        env={**env, "PATH": f"{fake}:/usr/bin:/bin", "RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    recorded = {}
    if record.with_suffix(".env").exists():
        for line in record.with_suffix(".env").read_text().splitlines():
            key, _, value = line.partition("=")
            recorded[key] = value
        recorded["ARGS"] = record.with_suffix(".args").read_text()
    return run.returncode, recorded, run.stderr


def test_start_script_takes_kserves_transformer_arguments(tmp_path: Path) -> None:
    """KServe appends --model_name, --predictor_host and --http_port (transformer_custom.go)."""
    code, env, stderr = _run_start_script(
        tmp_path, "--model_name", "ctr", "--predictor_host", "ctr-predictor.ml", "--http_port=8080"
    )
    assert code == 0, stderr
    assert env["ARGS"].split() == [
        "-m",
        "logic_service",
        "serve",
        "--config",
        "/app/logic.yaml",
    ]
    assert env["TIERKIT_GRAPH__REST_URL"] == "http://ctr-predictor.ml"
    assert env["TIERKIT_PORT"] == "8080"
    assert json.loads(env["TIERKIT_MODELS"]) == [{"name": "ctr", "base_path": "/mnt/models"}]
    assert "model ctr, predictor http://ctr-predictor.ml, port 8080" in stderr


def test_start_script_output_is_valid_logic_settings(tmp_path: Path, monkeypatch: Any) -> None:
    """What the script exports, with the overlay's logic.yaml, is a configuration the tier takes."""
    code, env, stderr = _run_start_script(
        tmp_path, "--model_name=churn", "--predictor_host=churn-predictor.ml", "--workers", "2"
    )
    assert code == 0, stderr
    assert "ignoring argument --workers" in stderr
    objects = render("overlays/kserve")
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config = tmp_path / "logic.yaml"
    config.write_text(cm["data"]["logic.yaml"])
    for key in list(os.environ):
        if key.startswith("TIERKIT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("TIERKIT_") and not key.endswith("_FILE"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("TIERKIT_STORAGE__DATABASE_URL", "postgresql://tierkit@db:5432/tierkit")
    settings = LogicSettings(**read_yaml(config))
    assert settings.model_names() == ["churn"]
    assert str(settings.base_path(settings.models[0])) == "/mnt/models"
    assert settings.graph.protocol == "rest"
    assert settings.graph.rest_url == "http://churn-predictor.ml"
    assert settings.port == 8080


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--predictor_host", "x"), "no --model_name"),
        (("--model_name", "ctr"), "no --predictor_host"),
        (("--model_name",), "--model_name needs a value"),
    ],
)
def test_start_script_refuses_what_kserve_would_not_send(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, _, stderr = _run_start_script(tmp_path, *args)
    assert code == 2 and re.search(re.escape(message), stderr), (code, stderr)
