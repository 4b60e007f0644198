"""Every rendered object against Kubernetes' own OpenAPI schemas, strictly.

kubernetes-validate (PyPI, dev extra) ships the JSON schemas generated from
Kubernetes' OpenAPI documents for 1.25 to 1.37; strict mode rejects any field
the schema does not know, on top of types, enums and required fields. Run for
the oldest and the newest minor tierkit supports (KUBERNETES_VERSIONS). The
InferenceService is a custom resource: test_kserve.py checks it against KServe's
own types.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from k8s_manifests import KUBERNETES_VERSIONS, kustomizations, name_of, render

FOLDERS = [name_of(f) for f in kustomizations()]
CUSTOM_KINDS = {"InferenceService"}  # test_kserve.py


def _problems(obj: dict[str, Any], version: str) -> list[str]:
    where = f"{obj['kind']} {obj['metadata']['name']}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: no schema for {exc}"]
    return []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", FOLDERS)
def test_every_object_is_valid_strictly(name: str, version: str) -> None:
    checked = 0
    problems = []
    for obj in render(name):
        if obj["kind"] in CUSTOM_KINDS:
            continue
        problems += _problems(obj, version)
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked, f"{name}: nothing to validate"


def _graph_deployment() -> dict[str, Any]:
    (obj,) = [
        o
        for o in render("overlays/production")
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "tierkit-graph"
    ]
    return obj


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        # a misspelt field: only strict validation sees it
        (lambda c: c.update(imagePullPolicyy="IfNotPresent"), "imagePullPolicyy"),
        # a wrong type
        (lambda c: c["ports"][0].update(containerPort="8500"), "is not of type 'integer'"),
        # a required field gone
        (lambda c: c.pop("name"), "'name' is a required property"),
        # a quantity that is neither a string nor a number
        (lambda c: c["resources"]["limits"].update(cpu=["2"]), "['2']"),
        # an unknown field deep inside a probe
        (lambda c: c["readinessProbe"].update(periodSecond=5), "periodSecond"),
    ],
    ids=["unknown-field", "wrong-type", "missing-required", "bad-quantity", "unknown-deep"],
)
def test_a_broken_manifest_fails(break_it: Any, expected: str) -> None:
    """The validation really bites: each deliberate mistake is refused and named."""
    broken = _graph_deployment()
    break_it(broken["spec"]["template"]["spec"]["containers"][0])
    for version in KUBERNETES_VERSIONS:
        problems = _problems(broken, version)
        assert problems and expected in problems[0], problems


def test_a_field_newer_than_the_oldest_version_is_caught() -> None:
    """Validating against the oldest minor matters: 1.30 lacks fields 1.37 has."""
    obj = _graph_deployment()
    # Pod-level resources arrived in 1.32 (alpha): fine for 1.37, unknown to 1.30.
    obj["spec"]["template"]["spec"]["resources"] = {"limits": {"cpu": "2"}}
    assert _problems(obj, KUBERNETES_VERSIONS[0])
    assert not _problems(obj, KUBERNETES_VERSIONS[-1])
