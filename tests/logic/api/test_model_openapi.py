"""A model's OpenAPI operation from its version: record schema, answer schema, example."""

from __future__ import annotations

from typing import Any

from logic_service.api.model_openapi import example_record, model_operation
from logic_service.inputs.schema import RecordValidator
from logic_service.manifest import Manifest, SignatureSpec, TensorSpec
from logic_service.versions.artifacts import VersionArtifacts, tensor_only_version

SIGNATURE = SignatureSpec(
    inputs={
        "x": TensorSpec(dtype="DT_FLOAT", shape=[-1, 3]),
        "ids": TensorSpec(dtype="DT_INT64", shape=[-1, 2, 2]),
        "word": TensorSpec(dtype="DT_STRING", shape=[-1]),
    },
    outputs={"score": TensorSpec(dtype="DT_FLOAT", shape=[-1, 1])},
)
SCHEMA = {
    "type": "object",
    "required": ["age"],
    "properties": {"age": {"type": "integer", "minimum": 0}},
    "examples": [{"age": -1}, {"age": 35}],
}


def _with_manifest(schema: dict[str, Any], **extra: Any) -> VersionArtifacts:
    manifest = Manifest(
        format="tierkit.manifest/1",
        name="loan",
        version=3,
        signatures={"serving_default": SIGNATURE},
        input_schema=schema,
        **extra,
    )
    return VersionArtifacts(
        "loan", 3, "serving_default", SIGNATURE, RecordValidator(schema), None, manifest
    )


def test_a_tensor_version_documents_its_inputs_and_a_zero_example() -> None:
    artifacts = tensor_only_version("plain", 1, "serving_default", SIGNATURE)
    operation = model_operation("plain", "v1", artifacts, (1,), {})
    content = operation["requestBody"]["content"]["application/json"]
    record = content["schema"]["oneOf"][0]
    assert record["properties"]["x"] == {
        "type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3,
    }  # fmt: skip
    assert record["properties"]["ids"]["items"] == {
        "type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
    }  # fmt: skip
    assert record["properties"]["word"] == {"type": "string"}
    assert content["examples"]["one record"]["value"] == {
        "x": [0.0, 0.0, 0.0],
        "ids": [[0, 0], [0, 0]],
        "word": "text",
    }
    answer = operation["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["properties"]["prediction"]["properties"] == {
        "score": {"type": "number"}
    }
    assert answer["example"]["prediction"] == {"score": 0.0}


def test_the_example_is_one_the_versions_own_schema_accepts() -> None:
    # the manifest's example_request first, when valid; else the first valid schema example
    assert example_record(_with_manifest(SCHEMA)) == {"age": 35}
    assert example_record(_with_manifest(SCHEMA, example_request={"age": 40})) == {"age": 40}
    assert example_record(_with_manifest(SCHEMA, example_request={"age": "x"})) == {"age": 35}
    only_bad = {**SCHEMA, "examples": [{"age": -1}]}
    assert example_record(_with_manifest(only_bad)) is None
    good_first = {**SCHEMA, "examples": [{"age": 35}]}
    assert example_record(_with_manifest(good_first)) == {"age": 35}


def test_other_ready_versions_are_named_and_deprecation_is_carried() -> None:
    operation = model_operation("loan", "v2", _with_manifest(SCHEMA), (2, 3, 4), {}, True)
    assert "as version 3 defines them" in operation["description"]
    assert "versions 2, 4" in operation["description"]
    assert operation["deprecated"] is True
    assert operation["operationId"] == "predict_loan_v2"
    assert operation["tags"] == ["model loan"]
