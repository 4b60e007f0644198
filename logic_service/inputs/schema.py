"""Validation of raw records against a version's ``input_schema`` (JSON Schema draft 2020-12).

The schema is compiled once per version by ``jsonschema-rs`` (Rust, draft
2020-12, every error reported): on the demo's request it checks a record in
1 to 2 µs where the hand-written subset it replaced took 29 to 47 µs
(``python -m bench schema`` on a busy machine, docs/manifest.md). A request pays for
``is_valid`` only; the errors are listed (and phrased as "field: rule, got
...") only for a record that fails.

What this module adds to the standard:

- a keyword draft 2020-12 does not define is refused when the version loads
  (the standard ignores it): ``"maximun": 10`` is a typo that would let
  requests through that the model's author meant to reject;
- ``$ref`` resolves inside the schema only, never over the network, and
  ``$schema``, when given, must be draft 2020-12's;
- an integer-valued number where the schema says ``integer`` (``35.0``;
  JSON Schema accepts it as an integer) reaches the feature code as the int
  ``35``, what training saw (``normalize``): ``str(35.0)`` is ``"35.0"``.
  Followed through ``properties``, ``additionalProperties``, ``items`` and
  ``prefixItems``; a field typed integer only inside ``allOf``/``anyOf``/``$ref``
  is validated but not converted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jsonschema_rs

# Every keyword of draft 2020-12's vocabularies (core, applicator, unevaluated,
# validation, format-annotation, content, meta-data).
KEYWORDS = frozenset(
    {
        "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
        "$comment", "$defs",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas",
        "prefixItems", "items", "contains", "properties", "patternProperties",
        "additionalProperties", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
        "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
        "required", "dependentRequired",
        "format", "contentEncoding", "contentMediaType", "contentSchema",
        "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    }
)  # fmt: skip
# Where subschemas sit, so the keyword check walks into them and nowhere else.
_ONE_SCHEMA = (
    "additionalProperties", "items", "contains", "propertyNames", "unevaluatedItems",
    "unevaluatedProperties", "not", "if", "then", "else", "contentSchema",
)  # fmt: skip
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
MAX_MESSAGE = 200
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# One normalizer: a value -> the same value, or a copy with integer-valued floats as ints.
Normalize = Callable[[Any], Any]


class SchemaError(ValueError):
    """The schema itself is unusable (unknown keyword, bad pattern): a broken export."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    plain = key.isidentifier()
    if not path:
        return key if plain else f"[{key!r}]"
    return f"{path}.{key}" if plain else f"{path}[{key!r}]"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_keywords(schema: Any, where: str = "input_schema") -> list[str]:
    """``where.keyword`` for every keyword draft 2020-12 does not define, walking subschemas."""
    if not isinstance(schema, Mapping):
        return []
    found = [f"{where}.{key}" for key in schema if key not in KEYWORDS]
    for key in _ONE_SCHEMA:
        if key in schema:
            found += unknown_keywords(schema[key], f"{where}.{key}")
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for index, sub in enumerate(schema[key]):
                found += unknown_keywords(sub, f"{where}.{key}[{index}]")
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), Mapping):
            for name, sub in schema[key].items():
                found += unknown_keywords(sub, f"{where}.{key}.{name}")
    return found


def _message(error: Any, base: str) -> list[str]:
    """One jsonschema-rs error as "field: rule, got ..." messages (several for many fields)."""
    path = base
    for key in error.instance_path:
        path = _join(path, key)
    kind = error.kind
    where = path or "<record>"
    value = error.instance
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return [f"{_join(path, kind.property)}: is required"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return [f"{_join(path, name)}: is not an allowed field" for name in kind.unexpected]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        return [f"{where}: must be {' or '.join(kind.types)}, got {json_type(value)}"]
    bounds = {
        jsonschema_rs.ValidationErrorKind.Minimum: ">=",
        jsonschema_rs.ValidationErrorKind.Maximum: "<=",
        jsonschema_rs.ValidationErrorKind.ExclusiveMinimum: ">",
        jsonschema_rs.ValidationErrorKind.ExclusiveMaximum: "<",
    }
    for kind_type, symbol in bounds.items():
        if isinstance(kind, kind_type):
            return [f"{where}: must be {symbol} {kind.limit}, got {_short(value)}"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.MinLength):
        return [f"{where}: must be at least {kind.limit} characters long, got {len(value)}"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.MaxLength):
        return [f"{where}: must be at most {kind.limit} characters long, got {len(value)}"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern):
        return [f"{where}: does not match pattern {kind.pattern}, got {_short(value)}"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        options = list(kind.options)
        shown = ", ".join(_short(o) for o in options[:10]) + (", ..." if len(options) > 10 else "")
        return [f"{where}: must be one of [{shown}], got {_short(value)}"]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.FalseSchema):
        return [f"{where}: is not allowed"]
    message = error.message  # the library's words for the rarer keywords (oneOf, const...)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return [f"{where}: {message}"]


def _integer_only(spec: Any) -> bool:
    """``type`` allows integers but not other numbers: a float there must become an int."""
    names = [spec] if isinstance(spec, str) else spec if isinstance(spec, list) else []
    return "integer" in names and "number" not in names


def _as_int(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def compile_normalizer(schema: Any) -> Normalize | None:
    """What ``normalize`` runs for ``schema``; None when nothing in it can need converting."""
    if not isinstance(schema, Mapping):
        return None
    steps: list[Normalize] = []
    if _integer_only(schema.get("type")):
        steps.append(_as_int)
    properties = schema.get("properties")
    fields: dict[str, Normalize] = {}
    if isinstance(properties, Mapping):
        fields = {
            name: found
            for name, sub in properties.items()
            if (found := compile_normalizer(sub)) is not None
        }
    # additionalProperties covers names neither properties nor patternProperties match:
    # with patternProperties the split is the regex's, so leave those values as sent.
    others = None
    if "patternProperties" not in schema:
        others = compile_normalizer(schema.get("additionalProperties"))
    if fields or others is not None:
        declared = frozenset(properties) if isinstance(properties, Mapping) else frozenset()
        steps.append(_object_normalizer(fields, others, declared))
    prefix = schema.get("prefixItems")
    firsts = [compile_normalizer(sub) for sub in prefix] if isinstance(prefix, list) else []
    rest = compile_normalizer(schema.get("items"))
    if rest is not None or any(f is not None for f in firsts):
        steps.append(_array_normalizer(firsts, rest))
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run_all(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return run_all


def _object_normalizer(
    fields: dict[str, Normalize], others: Normalize | None, declared: frozenset[str]
) -> Normalize:
    """``fields`` for declared names, ``others`` (additionalProperties) for the rest.

    Plain integer fields are checked inline (``type(v) is float``): a request pays
    about 0.1 µs per such field, not a function call each.
    """
    plain = tuple(name for name, fn in fields.items() if fn is _as_int)
    nested = tuple((name, fn) for name, fn in fields.items() if fn is not _as_int)

    def normalize(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        copy: dict[str, Any] | None = None
        for name in plain:
            old = value.get(name)
            if type(old) is float and old.is_integer():
                if copy is None:
                    copy = dict(value)
                copy[name] = int(old)
        if not nested and others is None:
            return value if copy is None else copy
        changes = [(name, fn(value[name])) for name, fn in nested if name in value]
        if others is not None:
            changes += [(k, others(item)) for k, item in value.items() if k not in declared]
        for name, new in changes:
            if new is not value[name]:
                if copy is None:
                    copy = dict(value)
                copy[name] = new
        return value if copy is None else copy

    return normalize


def _array_normalizer(firsts: list[Normalize | None], rest: Normalize | None) -> Normalize:
    def normalize(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        copy: list[Any] | None = None
        for index, old in enumerate(value):
            fn = firsts[index] if index < len(firsts) else rest
            if fn is None:
                continue
            new = fn(old)
            if new is not old:
                if copy is None:
                    copy = list(value)
                copy[index] = new
        return value if copy is None else copy

    return normalize


class RecordValidator:
    """A compiled input schema: ``errors(record, path)`` lists what is wrong with one record,
    ``normalize(record)`` gives it as the feature code must see it (after ``errors`` was empty)."""

    def __init__(self, schema: Mapping[str, Any] | bool) -> None:
        if not isinstance(schema, Mapping | bool):
            raise SchemaError("input_schema: a schema must be an object or a boolean")
        unknown = unknown_keywords(schema)
        if unknown:
            raise SchemaError(
                f"unsupported keyword(s) {sorted(unknown)}: not JSON Schema draft 2020-12 "
                "(a typo would silently accept what it meant to refuse)"
            )
        dialect = schema.get("$schema", DRAFT_2020_12) if isinstance(schema, Mapping) else None
        if dialect not in (None, DRAFT_2020_12, DRAFT_2020_12 + "#"):
            raise SchemaError(
                f"input_schema.$schema: {dialect!r} is not {DRAFT_2020_12} "
                "(the draft input schemas are validated with)"
            )
        self.schema = schema
        try:
            # offline: a $ref to a URL is refused, never fetched while a version loads
            self._validator = jsonschema_rs.Draft202012Validator(schema, offline=True)
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SchemaError(f"input_schema: not a valid JSON Schema: {first}") from exc
        self._normalize = compile_normalizer(schema)

    def is_valid(self, record: Any) -> bool:
        return self._validator.is_valid(record)

    def errors(self, record: Any, path: str = "") -> list[str]:
        if self._validator.is_valid(record):
            return []
        found: list[str] = []
        for error in self._validator.iter_errors(record):
            found.extend(_message(error, path))
        return found

    def normalize(self, record: Any) -> Any:
        """``record`` with integer-valued numbers as ints where the schema says integer."""
        return record if self._normalize is None else self._normalize(record)
