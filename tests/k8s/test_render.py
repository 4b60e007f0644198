"""Every kustomization under deploy/k8s renders, and what it renders holds together.

No cluster runs here: these checks are what `kubectl apply -k` would send,
read back. Schemas are test_schemas.py's, the policy linter test_policy.py's,
the match with docker-compose.yml test_compose_agreement.py's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from k8s_manifests import (
    EXTERNAL,
    K8S_DIR,
    ROOT,
    container,
    containers,
    copy_tree,
    find,
    kustomizations,
    name_of,
    pod_specs,
    render,
    render_folder,
)
from tensorflow_serving.config import model_server_config_pb2

from logic_service.settings import LogicSettings, read_yaml

FOLDERS = [name_of(f) for f in kustomizations()]


def test_the_expected_kustomizations_exist() -> None:
    assert set(FOLDERS) == {"base", "overlays/production", "overlays/kserve", "overlays/local"}


@pytest.mark.parametrize("name", FOLDERS)
def test_renders(name: str) -> None:
    objects = render(name)
    assert objects, f"{name} rendered nothing"
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj


@pytest.mark.parametrize("name", ["overlays/production", "overlays/kserve", "overlays/local"])
def test_everything_lands_in_one_namespace(name: str) -> None:
    for obj in render(name):
        if obj["kind"] in ("Namespace", "PersistentVolume"):
            continue
        assert obj["metadata"].get("namespace") == "tierkit", f"{obj['kind']} {obj['metadata']}"


def test_production_has_both_tiers_and_their_guards() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in render("overlays/production")}
    for tier in ("tierkit-graph", "tierkit-logic"):
        for kind in (
            "Deployment",
            "Service",
            "ServiceAccount",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ):
            assert (kind, tier) in kinds, f"production lacks {kind} {tier}"
    assert ("Ingress", "tierkit") in kinds
    assert ("PersistentVolumeClaim", "tierkit-models") in kinds
    assert ("Namespace", "tierkit") in kinds


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _walk_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _walk_strings(v)]
    return []


_URL_WITH_PASSWORD = re.compile(r"[a-z+]+://[^/@:\s]+:[^/@\s]+@")


@pytest.mark.parametrize("name", FOLDERS)
def test_no_secret_is_in_the_manifests(name: str) -> None:
    """Secrets are created by the operator; no Secret object, no password in a value."""
    objects = render(name)
    assert not [o for o in objects if o["kind"] == "Secret"]
    for obj in objects:
        for text in _walk_strings(obj):
            assert not _URL_WITH_PASSWORD.search(text), f"{obj['kind']}: a URL with a password"
    for owner, spec in pod_specs(objects):
        for c in containers(spec):
            for env in c.get("env", []):
                if re.search(r"PASSWORD|TOKEN|SECRET|API_KEY", env["name"]) and not env[
                    "name"
                ].endswith("_FILE"):
                    assert "value" not in env, f"{owner} {c['name']}: {env['name']} as a literal"


def _references(spec: dict[str, Any]) -> set[tuple[str, str]]:
    refs = set()
    if spec.get("serviceAccountName"):
        refs.add(("ServiceAccount", spec["serviceAccountName"]))
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "persistentVolumeClaim" in volume:
            refs.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        for source in volume.get("projected", {}).get("sources", []):
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if key in source:
                    refs.add((kind, source[key]["name"]))
    for c in containers(spec):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                refs.add(("Secret", ref["secretKeyRef"]["name"]))
            if "configMapKeyRef" in ref:
                refs.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
            if env["name"] == "STORAGE_URI" and env.get("value", "").startswith("pvc://"):
                refs.add(("PersistentVolumeClaim", env["value"][len("pvc://") :].split("/")[0]))
    return refs


@pytest.mark.parametrize("name", ["overlays/production", "overlays/local"])
def test_every_reference_resolves(name: str) -> None:
    """Each ConfigMap, Secret, claim and account a pod names is rendered, or created by you."""
    objects = render(name)
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for owner, spec in pod_specs(objects):
        missing = _references(spec) - present - EXTERNAL
        assert not missing, f"{owner} refers to {sorted(missing)}, which nothing creates"


def test_kserve_references_resolve_or_are_documented() -> None:
    objects = render("overlays/kserve")
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    # The model volume is production's claim, shared (docs/kubernetes.md).
    external = EXTERNAL | {("PersistentVolumeClaim", "tierkit-models")}
    for owner, spec in pod_specs(objects):
        missing = _references(spec) - present - external
        assert not missing, f"{owner} refers to {sorted(missing)}"
    isvc = find(objects, "InferenceService", "ctr")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://tierkit-models/ctr"


def _config_map_of(objects: list[dict[str, Any]], volume_name: str, deployment: str) -> str:
    spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == volume_name]
    return volume["configMap"]["name"]


@pytest.mark.parametrize(
    ("file", "deployment", "volume"),
    [
        ("base/config/logic.yaml", "tierkit-logic", "logic-config"),
        ("base/config/models.config", "tierkit-graph", "models-config"),
    ],
)
def test_a_config_change_rolls_the_pods(
    tmp_path: Path, file: str, deployment: str, volume: str
) -> None:
    """The generated ConfigMap's name carries its content's hash, and the pods name it."""
    before = render("overlays/production")
    name = _config_map_of(before, volume, deployment)
    assert re.fullmatch(r"tierkit-[a-z-]+-[a-z0-9]{10}", name), name
    find(before, "ConfigMap", name)  # the pods' name is the rendered object's
    tree = copy_tree(tmp_path)
    edited = tree / file
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    after = render_folder(tree / "overlays" / "production")
    assert _config_map_of(after, volume, deployment) != name


def _config_text(objects: list[dict[str, Any]], prefix: str, key: str) -> str:
    (cm,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")
    ]
    return cm["data"][key]


@pytest.mark.parametrize("name", ["overlays/production", "overlays/local", "overlays/kserve"])
def test_logic_yaml_is_valid_for_the_logic_tier(name: str, tmp_path: Path) -> None:
    """The ConfigMap's logic.yaml loads with the tier's strict settings (a typo fails)."""
    text = _config_text(render(name), "tierkit-logic-config", "logic.yaml")
    path = tmp_path / "logic.yaml"
    path.write_text(text, encoding="utf-8")
    settings = LogicSettings(**read_yaml(path))
    assert settings.storage.migrate_on_start is False  # the init container migrates


def test_models_config_parses_and_names_the_logic_tiers_models(tmp_path: Path) -> None:
    objects = render("overlays/production")
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(_config_text(objects, "tierkit-models-config", "models.config"), config)
    served = {m.name: m.base_path for m in config.model_config_list.config}
    path = tmp_path / "logic.yaml"
    path.write_text(_config_text(objects, "tierkit-logic-config", "logic.yaml"), encoding="utf-8")
    logic_models = set(LogicSettings(**read_yaml(path)).model_names())
    assert set(served) == logic_models
    graph = container(objects, "tierkit-graph", "tfserving")
    mounted = {m["mountPath"] for m in graph["volumeMounts"]}
    for model, base_path in served.items():
        # Relative paths resolve under /app (the image's WORKDIR), where the volume is.
        resolved = base_path if base_path.startswith("/") else f"/app/{base_path}"
        assert "://" in base_path or any(resolved.startswith(m + "/") for m in mounted), (
            f"{model}: {base_path} is on no mounted volume"
        )


def test_monitoring_config_is_the_compose_stacks() -> None:
    ours = K8S_DIR / "base" / "config" / "monitoring.config"
    compose_one = ROOT / "deploy" / "tfserving" / "monitoring.config"
    assert ours.read_text() == compose_one.read_text(), (
        "deploy/k8s/base/config/monitoring.config must be a copy of "
        "deploy/tfserving/monitoring.config (kustomize reads no file outside its folder)"
    )


def test_kustomize_files_are_plain_yaml() -> None:
    for path in K8S_DIR.rglob("*.yaml"):
        list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
