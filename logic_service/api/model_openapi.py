"""Per-model predict paths in ``/openapi.json``: each served model's request, answer, example.

The generic ``/v1/models/{name}/predict`` cannot say what a model takes: the
record schema is in each version's manifest. So OpenAPI also lists
``/{api}/models/<model>/predict`` for every model and request API with ready
versions, with the record schema (the manifest's ``input_schema``, JSON Schema
2020-12 as OpenAPI 3.1 takes it), the answer's schema from the signature's
outputs, and an example record. The version shown is the one the default rule
answers with (the ``stable`` label, else the newest); the description names the
other ready versions, which may take another schema.

The paths are rebuilt only when the registry publishes a new snapshot of a
model (a version became ready or went away, a label moved) or the set of
models changes: ``/docs`` follows a publish without a restart.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from logic_service.manifest import TensorSpec
from logic_service.routing.version_policy import NoVersion, StableOrNewest

if TYPE_CHECKING:
    from logic_service.routing.api_versions import ApiCatalog
    from logic_service.versions.artifacts import VersionArtifacts
    from logic_service.versions.registry import ModelRegistry

_INTEGER_DTYPES = frozenset(
    {"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32",
     "DT_UINT64"}
)  # fmt: skip
_EXAMPLE_ID = "3f2a9c0e6f1b4e8f9d7c5a3b1e0f2d4c"

log = logging.getLogger(__name__)


def _value_schema(spec: TensorSpec | None) -> dict[str, Any]:
    """One record's value of a tensor: its dtype's JSON type, nested per dimension."""
    if spec is None:
        return {}
    if spec.dtype == "DT_STRING":
        item: dict[str, Any] = {"type": "string"}
    elif spec.dtype == "DT_BOOL":
        item = {"type": "boolean"}
    elif spec.dtype in _INTEGER_DTYPES:
        item = {"type": "integer"}
    else:
        item = {"type": "number"}
    if spec.shape is None:
        return {}  # unknown rank: anything
    dims = spec.shape[1:]  # without the batch dimension
    if dims in ([], [1]):  # [1]-shaped values are answered as scalars
        return item
    for size in reversed(dims):
        item = {"type": "array", "items": item}
        if size >= 0:
            item["minItems"] = item["maxItems"] = size
    return item


def _placeholder(schema: Mapping[str, Any]) -> Any:
    """A value of the schema's shape (an example of a tensor, an answer)."""
    kind = schema.get("type")
    if kind == "array":
        return [_placeholder(schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    return {"string": "text", "boolean": False, "integer": 0}.get(str(kind), 0.0)


def example_record(artifacts: VersionArtifacts) -> dict[str, Any] | None:
    """An example request record that this version accepts, or None when it has none.

    In order: the manifest's ``example_request``, the input schema's ``examples``,
    the feature module's ``EXAMPLE_REQUEST``; for a version
    taking tensors, zeros shaped like its inputs. Only one its own schema accepts.
    """
    candidates: list[Any] = []
    manifest = artifacts.manifest
    if manifest is not None:
        candidates.append(getattr(manifest, "example_request", None))
        schema = manifest.input_schema or {}
        examples = schema.get("examples") if isinstance(schema, Mapping) else None
        if isinstance(examples, list):
            candidates.extend(examples)
    if artifacts.features is not None:
        module = inspect.getmodule(artifacts.features.function)
        candidates.append(getattr(module, "EXAMPLE_REQUEST", None))
    if artifacts.features is None and artifacts.validator is None:
        candidates.append(
            {
                name: _placeholder(_value_schema(spec))
                for name, spec in artifacts.signature.inputs.items()
            }
        )
    for candidate in candidates:
        if not isinstance(candidate, dict):
            continue
        if artifacts.validator is None or artifacts.validator.errors(candidate) == []:
            return candidate
    return None


def record_schema(artifacts: VersionArtifacts) -> dict[str, Any]:
    """The schema of one request record: the input schema, or the tensors by input name."""
    if artifacts.manifest is not None and artifacts.manifest.input_schema:
        return copy.deepcopy(artifacts.manifest.input_schema)
    inputs = artifacts.signature.inputs
    return {
        "type": "object",
        "title": "tensors, one value per signature input (without the batch dimension)",
        "required": sorted(inputs),
        "properties": {name: _value_schema(spec) for name, spec in inputs.items()},
    }


def answer_schema(model: str, artifacts: VersionArtifacts) -> dict[str, Any]:
    outputs = {
        name: _value_schema(artifacts.signature.outputs.get(name))
        for name in artifacts.output_names
    }
    prediction = {
        "type": "object",
        "required": sorted(outputs),
        "properties": outputs,
        "description": "The signature's outputs by name; [1]-shaped outputs as scalars.",
    }
    return {
        "type": "object",
        "required": ["request_id", "model", "version"],
        "properties": {
            "request_id": {"type": "string"},
            "model": {"const": model},
            "version": {"type": "integer", "description": "The version that answered."},
            "prediction": prediction,
            "predictions": {"type": "array", "items": prediction},
        },
    }


def model_operation(
    model: str,
    api: str,
    artifacts: VersionArtifacts,
    ready: tuple[int, ...],
    template: Mapping[str, Any],
    deprecated: bool = False,
) -> dict[str, Any]:
    """The POST operation of ``/{api}/models/{model}/predict`` as this version defines it."""
    record = record_schema(artifacts)
    example = example_record(artifacts)
    outputs = answer_schema(model, artifacts)
    content: dict[str, Any] = {
        "schema": {
            "oneOf": [
                {**record, "title": f"one {model} record"},
                {
                    "type": "object",
                    "title": f"a batch of {model} records",
                    "required": ["records"],
                    "properties": {"records": {"type": "array", "minItems": 1, "items": record}},
                },
            ]
        }
    }
    if example is not None:
        content["examples"] = {
            "one record": {"summary": f"one {model} record", "value": example},
            "a batch": {"summary": "two records", "value": {"records": [example, example]}},
        }
    answer_example = {
        "request_id": _EXAMPLE_ID,
        "model": model,
        "version": artifacts.version,
        "prediction": {
            name: _placeholder(sub)
            for name, sub in outputs["properties"]["prediction"]["properties"].items()
        },
    }
    others = [v for v in ready if v != artifacts.version]
    described = (
        f"Request and answer of model **{model}**, API {api}, as version {artifacts.version} "
        "defines them (the version the stable label, else the newest, names)."
    )
    if others:
        described += (
            f" Also ready: version{'s' if len(others) > 1 else ''} "
            f"{', '.join(map(str, others))}; a rollout may route to them, and their schema may "
            f"differ: see /{api}/models/{model}/versions/{{version}}/predict."
        )
    responses = copy.deepcopy(dict(template.get("responses", {})))
    responses["200"] = {
        "description": "The model's outputs for the record (or records).",
        "content": {"application/json": {"schema": outputs, "example": answer_example}},
    }
    return {
        "tags": [f"model {model}"],
        "summary": f"Score {model} records (API {api})",
        "description": described,
        "operationId": f"predict_{model}_{api}",
        "requestBody": {"required": True, "content": {"application/json": content}},
        "responses": responses,
        **({"deprecated": True} if deprecated else {}),
    }


class ModelPaths:
    """The per-model paths, rebuilt only when a model's snapshot in the registry changed."""

    def __init__(self, catalog: ApiCatalog, stable_label: str) -> None:
        self.catalog = catalog
        self.policy = StableOrNewest(stable_label)
        self._key: tuple[Any, ...] | None = None
        self._retired: dict[str, Any] = {}
        self._paths: dict[str, Any] = {}

    def _snapshot(self, registry: ModelRegistry) -> tuple[Any, ...]:
        return tuple((m, registry.routable(m)) for m in registry.model_names())

    def paths(self, template_of: Callable[[str], Mapping[str, Any]]) -> dict[str, Any]:
        """``{path: {"post": operation}}``; ``template_of(api)`` is the generic operation."""
        registry = self.catalog.registry
        if registry is None:
            return {}
        key = self._snapshot(registry)
        retired = copy.deepcopy(self.catalog.retired)
        if self._key is not None and _same(self._key, key) and retired == self._retired:
            return self._paths
        paths: dict[str, Any] = {}
        for model, _routable in key:
            configured = self.catalog.configured(model)
            for api, view in sorted(self.catalog.views(model).items()):
                try:
                    version = self.policy.choose(view)
                except NoVersion:
                    continue
                artifacts = registry.artifacts(model, version)
                if artifacts is None:
                    continue
                spec = configured.get(api)
                deprecated = (spec is not None and spec.deprecated is not None) or (
                    self.catalog.retirement(model, api) is not None
                )
                try:
                    operation = model_operation(
                        model, api, artifacts, view.ready_versions, template_of(api), deprecated
                    )
                except Exception:  # one model's odd manifest must not take /docs down
                    log.exception("OpenAPI of model %s, API %s, version %d", model, api, version)
                    continue
                paths[f"/{api}/models/{model}/predict"] = {"post": operation}
        self._key, self._retired, self._paths = key, retired, paths
        return paths


def _same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Same models, each with the very same routable snapshot (the registry replaces it)."""
    return len(old) == len(new) and all(
        a[0] == b[0] and a[1] is b[1] for a, b in zip(old, new, strict=True)
    )
