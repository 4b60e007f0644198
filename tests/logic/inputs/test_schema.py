from __future__ import annotations

import re

import pytest

from logic_service.features import ctr
from logic_service.inputs.schema import RecordValidator, SchemaError


@pytest.fixture(scope="module")
def validator() -> RecordValidator:
    return RecordValidator(ctr.INPUT_SCHEMA)


def test_the_demo_request_is_valid(validator: RecordValidator) -> None:
    assert validator.errors(ctr.EXAMPLE_REQUEST) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"birthday": "29/04/1995"}, "birthday: does not match pattern"),
        ({"userId": "102079311"}, "userId: must be integer, got string"),
        ({"userId": 1.5}, "userId: must be integer, got number"),
        ({"appId": True}, "appId: must be integer, got boolean"),
        ({"appId": -1}, "appId: must be >= 0, got -1"),
        ({"channel": 2**31}, "channel: must be <= 2147483647"),
        ({"languageId": ""}, "languageId: must be at least 1 characters long, got 0"),
        ({"deviceName": "x" * 129}, "deviceName: must be at most 128 characters long, got 129"),
        ({"screenSize": "720x1440"}, "screenSize: does not match pattern ^\\d{1,5}\\*\\d{1,5}$"),
    ],
)
def test_each_rule_names_field_and_rule(
    validator: RecordValidator, change: dict, message: str
) -> None:
    errors = validator.errors(ctr.EXAMPLE_REQUEST | change)
    assert len(errors) == 1
    assert errors[0].startswith(message), errors


def test_missing_fields_and_batch_paths(validator: RecordValidator) -> None:
    record = dict(ctr.EXAMPLE_REQUEST)
    del record["userId"]
    record["birthday"] = "yesterday"
    errors = validator.errors(record, "records[3]")
    assert "records[3].userId: is required" in errors
    assert any(e.startswith("records[3].birthday: does not match pattern") for e in errors)


def test_a_record_must_be_an_object(validator: RecordValidator) -> None:
    assert validator.errors([1, 2]) == ["<record>: must be object, got array"]


def test_enum_additional_properties_items_and_nested_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"enum": ["a", "b", 1]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
            "geo": {
                "type": "object",
                "required": ["lat"],
                "properties": {"lat": {"type": "number"}},
            },
        },
        "additionalProperties": False,
    }
    validator = RecordValidator(schema)
    assert validator.errors({"kind": "a", "tags": ["x"], "geo": {"lat": 1.5}}) == []
    assert validator.errors({"kind": True}) == ["kind: must be one of ['a', 'b', 1], got True"]
    assert validator.errors({"tags": ["abcd"]}) == [
        "tags[0]: must be at most 3 characters long, got 4"
    ]
    assert validator.errors({"geo": {}}) == ["geo.lat: is required"]
    assert validator.errors({"extra field": 1}) == ["['extra field']: is not an allowed field"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "maximun": 10}, "unsupported keyword(s) ['input_schema.maximun']"),
        (
            {"properties": {"x": {"items": {"minLenght": 1}}}},
            "['input_schema.properties.x.items.minLenght']",
        ),
        ({"type": "decimal"}, "not a valid JSON Schema"),
        ({"properties": {"x": {"pattern": "("}}}, "not a valid JSON Schema"),
        ({"properties": {"x": {"minLength": -1}}}, "not a valid JSON Schema"),
        ({"$ref": "http://127.0.0.1:9/schema.json"}, "Retrieval is disabled"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "is not https://json-schema"),
    ],
)
def test_schemas_it_cannot_honour_are_refused_when_the_version_loads(
    schema: dict, message: str
) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        RecordValidator(schema)


def test_every_draft_2020_12_keyword_is_honoured() -> None:
    schema = {
        "type": "object",
        "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{2}$"}},
        "properties": {
            "country": {"$ref": "#/$defs/code"},
            "amount": {"type": "number", "multipleOf": 0.5},
            "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]},
        },
        "dependentRequired": {"amount": ["country"]},
    }
    validator = RecordValidator(schema)
    assert validator.errors({"country": "DE", "amount": 1.5, "kind": "a"}) == []
    assert validator.errors({"country": "de"}) == [
        "country: does not match pattern ^[A-Z]{2}$, got 'de'"
    ]
    problems = validator.errors({"amount": 1.2, "kind": "c"})
    assert len(problems) == 3, problems
    assert any(p.startswith("amount: ") and "multiple of 0.5" in p for p in problems)
    assert any(p.startswith("kind: ") for p in problems)
    assert "country: is required" in problems  # dependentRequired: amount needs country


def test_an_integer_valued_number_is_an_integer_and_reaches_features_as_int(
    validator: RecordValidator,
) -> None:
    """JSON Schema: 35.0 is an integer. Feature code doing str(value) must see "35"."""
    record = ctr.EXAMPLE_REQUEST | {"appId": 20000.0, "userId": 102079311.0}
    assert validator.errors(record) == []
    normalized = validator.normalize(record)
    assert normalized == ctr.EXAMPLE_REQUEST
    assert type(normalized["appId"]) is int and type(normalized["userId"]) is int
    assert ctr.derive(normalized)["app_id"] == "20000"
    assert record["appId"] == 20000.0 and type(record["appId"]) is float  # the body is not changed
    assert validator.normalize(ctr.EXAMPLE_REQUEST) is ctr.EXAMPLE_REQUEST  # nothing to convert


def test_normalizing_follows_nested_objects_arrays_and_leaves_numbers_alone() -> None:
    schema = {
        "type": "object",
        "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}]},
            "geo": {"type": "object", "properties": {"zone": {"type": ["integer", "null"]}}},
            "price": {"type": "number"},
            "either": {"type": ["integer", "number"]},
        },
        "additionalProperties": {"type": "integer"},
    }
    validator = RecordValidator(schema)
    record = {
        "ids": [1.0, 2, 3.0],
        "pair": [4.0, 5.0],
        "geo": {"zone": 7.0},
        "price": 9.0,
        "either": 1.0,
        "extra": 11.0,
    }
    assert validator.errors(record) == []
    normalized = validator.normalize(record)
    assert normalized == record
    assert [type(v) for v in normalized["ids"]] == [int, int, int]
    assert [type(v) for v in normalized["pair"]] == [int, float]
    assert type(normalized["geo"]["zone"]) is int
    assert type(normalized["price"]) is float and type(normalized["either"]) is float
    assert type(normalized["extra"]) is int
    assert validator.errors({"ids": [1.5]}) == ["ids[0]: must be integer, got number"]
