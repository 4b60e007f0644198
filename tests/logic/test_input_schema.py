from __future__ import annotations

import pytest

from logic_service.features import ctr
from logic_service.input_schema import RecordValidator, SchemaError


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
        ({"userId": 1.0}, "userId: must be integer, got number"),
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
    "schema",
    [
        {"type": "object", "oneOf": [{}]},
        {"type": "decimal"},
        {"properties": {"x": {"pattern": "("}}},
        {"properties": {"x": {"minLength": -1}}},
    ],
)
def test_schemas_outside_the_subset_are_refused(schema: dict) -> None:
    with pytest.raises(SchemaError):
        RecordValidator(schema)
