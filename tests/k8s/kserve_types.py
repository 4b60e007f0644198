"""Check objects strictly against KServe's published types; runs in the tools virtualenv.

    .cache/k8s-tools/bin/python tests/k8s/kserve_types.py < objects.json

Reads a JSON list of objects, prints a JSON object: the kserve and kubernetes
package versions and, per object, the problems found. The types are the
`kserve` package's generated models (``kserve.models.V1beta1*``: each has
``openapi_types``, field -> type, and ``attribute_map``, field -> JSON key) and,
for the Kubernetes types they embed (``V1Container``, ``V1Volume``...), the
`kubernetes` client's models of the same form. Every key must be one the type
knows, every value of the type's kind, and every required field present (the
models' own constructors refuse a missing one). A type name neither package
defines is a problem too, never a pass.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
import types
from importlib import metadata
from typing import Any

import kubernetes.client.models as k8s_models


def _load_kserve_models() -> types.ModuleType:
    """``kserve.models`` without running ``kserve/__init__.py``.

    The package's ``__init__`` imports its model server (FastAPI, gRPC, the
    inference clients), 2-3 s that the generated types never use; they need only
    ``kserve.configuration``. So the package is registered bare, by its path.
    """
    spec = importlib.util.find_spec("kserve")
    assert spec and spec.submodule_search_locations, "the kserve package is not installed"
    package = types.ModuleType("kserve")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["kserve"] = package
    return importlib.import_module("kserve.models")


kserve_models = _load_kserve_models()

# Names KServe's generator gives types the kubernetes client has under its own name,
# and the scalar kinds behind the rest.
ALIASES = {
    "K8sIoApiAppsV1DeploymentStrategy": "V1DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": "V2HorizontalPodAutoscalerBehavior",
}
QUANTITY = {"ResourceQuantity", "V1beta1MetricQuantity"}  # "500m", "1Gi", 2
TIME = {"V1Time", "datetime", "date"}

_LIST = re.compile(r"^(?:list|List)\[(.*)\]$")
_DICT = re.compile(r"^(?:dict\(|Dict\[)([^,]+),\s*(.*)[)\]]$")


def resolve(type_name: str) -> type | None:
    name = ALIASES.get(type_name, type_name)
    return getattr(kserve_models, name, None) or getattr(k8s_models, name, None)


def check(value: Any, type_name: str, path: str, problems: list[str]) -> None:
    if value is None:
        return  # an explicit null: the field is unset
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list ({type_name}), got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, m.group(1).strip(), f"{path}[{i}]", problems)
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping ({type_name}), got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
            check(item, m.group(2).strip(), f"{path}.{key}", problems)
        return
    kinds: dict[str, tuple[type, ...]] = {
        "str": (str,),
        "int": (int,),
        "float": (int, float),
        "bool": (bool,),
    }
    if type_name in kinds:
        ok = isinstance(value, kinds[type_name]) and (
            type_name == "bool" or not isinstance(value, bool)
        )
        if not ok:
            problems.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    if type_name == "object":
        return  # int-or-string and free-form fields
    if type_name in QUANTITY:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(f"{path}: expected a quantity, got {value!r}")
        return
    if type_name in TIME:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a timestamp string, got {value!r}")
        return
    model = resolve(type_name)
    if model is None:
        problems.append(f"{path}: type {type_name} is in neither kserve nor kubernetes")
        return
    check_model(value, model, path, problems)


def check_model(value: Any, model: type, path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {model.__name__} mapping, got {value!r}")
        return
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    present = {}
    for key, item in value.items():
        attr = by_key.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not a field of {model.__name__}")
            continue
        check(item, model.openapi_types[attr], f"{path}.{key}", problems)
        present[attr] = item
    try:
        model(**present)  # the generated setters refuse a required field left out
    except (ValueError, TypeError) as exc:
        problems.append(f"{path}: {model.__name__}: {exc}")


def check_inference_service(obj: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if obj.get("apiVersion") != "serving.kserve.io/v1beta1":
        problems.append(f"apiVersion {obj.get('apiVersion')!r} is not serving.kserve.io/v1beta1")
    if obj.get("kind") != "InferenceService":
        problems.append(f"kind {obj.get('kind')!r} is not InferenceService")
    check_model(obj, kserve_models.V1beta1InferenceService, "InferenceService", problems)
    return problems


def main() -> int:
    objects = json.load(sys.stdin)
    print(
        json.dumps(
            {
                "kserve": metadata.version("kserve"),
                "kubernetes": metadata.version("kubernetes"),
                "problems": [check_inference_service(obj) for obj in objects],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
