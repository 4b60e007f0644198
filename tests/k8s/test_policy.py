"""checkov's Kubernetes checks pass on every rendered overlay; each skip says why.

checkov (tools-requirements.txt) reads the rendered manifests as `kubectl apply
-k` would send them. A check is skipped only by an annotation on the object it
concerns (``checkov.io/skipN: CKV_K8S_NN=<reason>``), so the reason sits next to
what it excuses and ships with it. One run (about 10 s: checkov's own start is
most of it) covers the overlays and a deliberately insecure Deployment, which
must fail, so a checkov that checks nothing cannot pass this test.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_manifests import render
from k8s_tools import tool

OVERLAYS = ("overlays/production", "overlays/local", "overlays/kserve")
SKIP = re.compile(r"^checkov\.io/skip\d+$")
INSECURE = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "insecure", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "insecure"}},
        "template": {
            "metadata": {"labels": {"app": "insecure"}},
            "spec": {
                "hostNetwork": True,
                "containers": [
                    {
                        "name": "c",
                        "image": "example/insecure:latest",
                        "securityContext": {"privileged": True},
                    }
                ],
            },
        },
    },
}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("rendered")
    for name in OVERLAYS:
        path = folder / (name.replace("/", "-") + ".yaml")
        path.write_text(yaml.safe_dump_all(render(name), sort_keys=False))
    (folder / "insecure.yaml").write_text(yaml.safe_dump(INSECURE))
    run = subprocess.run(
        [
            str(tool("checkov")),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            # offline: no guideline download from the vendor's platform
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=folder,
    )
    assert run.stdout.strip().startswith("{"), f"checkov said:\n{run.stdout}\n{run.stderr}"
    report = json.loads(run.stdout)
    report["folder"] = str(folder)
    return report


def _file(check: dict[str, Any]) -> str:
    return Path(check["file_path"]).name


def test_checkov_passes_on_every_overlay(checkov_report: dict[str, Any]) -> None:
    results = checkov_report["results"]
    failed = [c for c in results["failed_checks"] if _file(c) != "insecure.yaml"]
    assert not failed, "\n".join(
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({_file(c)})" for c in failed
    )
    ours = [c for c in results["passed_checks"] if _file(c) != "insecure.yaml"]
    checked = {_file(c) for c in ours}
    # The InferenceService is a kind checkov does not know; the other two are full of them.
    assert {"overlays-production.yaml", "overlays-local.yaml"} <= checked
    assert len(ours) > 300, f"only {len(ours)} checks passed: is checkov checking?"


def test_checkov_fails_an_insecure_deployment(checkov_report: dict[str, Any]) -> None:
    failed = {
        c["check_id"]
        for c in checkov_report["results"]["failed_checks"]
        if _file(c) == "insecure.yaml"
    }
    # privileged, host network, no probes, no limits, a `latest` tag, root...
    assert {"CKV_K8S_16", "CKV_K8S_19", "CKV_K8S_8", "CKV_K8S_13", "CKV_K8S_14"} <= failed


def test_every_skip_is_justified_in_place(checkov_report: dict[str, Any]) -> None:
    """Each skip names one check and gives a reason of a sentence, on the object itself."""
    for name in OVERLAYS:
        for obj in render(name):
            for key, value in obj["metadata"].get("annotations", {}).items():
                if not SKIP.match(key):
                    continue
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), f"{key}: {value}"
                assert len(reason.split()) >= 8, f"{obj['metadata']['name']} {check}: {reason!r}"
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped and all(c["check_result"].get("suppress_comment") for c in skipped)
