"""Validation of raw records against a version's ``input_schema``.

The manifest holds a JSON Schema subset (``type``, ``required``,
``properties``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``minLength``, ``maxLength``, ``pattern``, ``enum``,
``additionalProperties``, ``items``). It is compiled once per version into
plain closures, because a general validator walking the schema dict per request
costs more than the rest of the logic tier together. A keyword outside the
subset is refused when the version loads, not ignored: ignoring it would let
requests through that the model's author meant to reject.

Two deliberate strictnesses: ``integer`` means a JSON integer literal (``1.0``
is refused: feature code doing ``str(value)`` would see ``"1.0"`` and drift
from training), and booleans are never numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# Keywords that only annotate; they never reject a value.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "format"}
)
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

# One compiled check: (value, path, errors) -> None, appending "path: rule" messages.
Check = Callable[[Any, str, list[str]], None]


class SchemaError(ValueError):
    """The schema itself is unusable (unknown keyword, bad pattern): a broken export."""


def json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _join(path: str, key: str) -> str:
    plain = key.isidentifier()
    if not path:
        return key if plain else f"[{key!r}]"
    return f"{path}.{key}" if plain else f"{path}[{key!r}]"


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compile_schema(schema: Mapping[str, Any] | bool, where: str = "input_schema") -> Check:
    """Turn a schema into one check function; raise SchemaError on what it cannot honour."""
    if schema is True or schema == {}:
        return lambda value, path, errors: None
    if schema is False:
        return lambda value, path, errors: errors.append(f"{path or '<record>'}: is not allowed")
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{where}: a schema must be an object or a boolean")
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    if unknown:
        raise SchemaError(f"{where}: unsupported keyword(s) {sorted(unknown)}")
    checks: list[Check] = []
    if "type" in schema:
        checks.append(_type_check(schema["type"], where))
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"], where))
    checks.extend(_number_checks(schema, where))
    checks.extend(_string_checks(schema, where))
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        checks.append(_object_check(schema, where))
    if "items" in schema:
        checks.append(_items_check(schema["items"], where))
    if len(checks) == 1:
        return checks[0]

    def run_all(value: Any, path: str, errors: list[str]) -> None:
        before = len(errors)
        for check in checks:
            check(value, path, errors)
            if len(errors) > before:  # one message per value: the first rule it breaks
                return

    return run_all


def _type_check(spec: Any, where: str) -> Check:
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
        raise SchemaError(f"{where}.type: must be one of {sorted(_TYPES)} or a list of them")
    tests = [_TYPES[n] for n in names]
    wanted = " or ".join(names)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if not any(test(value) for test in tests):
            errors.append(f"{path or '<record>'}: must be {wanted}, got {json_type(value)}")

    return check


def _enum_check(options: Any, where: str) -> Check:
    if not isinstance(options, list) or not options:
        raise SchemaError(f"{where}.enum: must be a non-empty list")
    # JSON equality: 1 and True differ, so compare with the type.
    allowed = [(json_type(o), o) for o in options]
    shown = ", ".join(_short(o) for o in options[:10]) + (", ..." if len(options) > 10 else "")

    def check(value: Any, path: str, errors: list[str]) -> None:
        if (json_type(value), value) not in allowed:
            errors.append(f"{path or '<record>'}: must be one of [{shown}], got {_short(value)}")

    return check


def _number_checks(schema: Mapping[str, Any], where: str) -> list[Check]:
    rules = {
        "minimum": (lambda v, b: v >= b, ">="),
        "maximum": (lambda v, b: v <= b, "<="),
        "exclusiveMinimum": (lambda v, b: v > b, ">"),
        "exclusiveMaximum": (lambda v, b: v < b, "<"),
    }
    checks: list[Check] = []
    for keyword, (holds, symbol) in rules.items():
        if keyword not in schema:
            continue
        bound = schema[keyword]
        if not _TYPES["number"](bound):
            raise SchemaError(f"{where}.{keyword}: must be a number")

        def check(value: Any, path: str, errors: list[str], holds=holds, bound=bound, sym=symbol):
            if _TYPES["number"](value) and not holds(value, bound):
                errors.append(f"{path or '<record>'}: must be {sym} {bound}, got {value}")

        checks.append(check)
    return checks


def _string_checks(schema: Mapping[str, Any], where: str) -> list[Check]:
    checks: list[Check] = []
    for keyword in ("minLength", "maxLength"):
        if keyword not in schema:
            continue
        bound = schema[keyword]
        if not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
            raise SchemaError(f"{where}.{keyword}: must be a non-negative integer")
        if keyword == "minLength":

            def check(value: Any, path: str, errors: list[str], bound=bound) -> None:
                if isinstance(value, str) and len(value) < bound:
                    errors.append(
                        f"{path or '<record>'}: must be at least {bound} characters long, "
                        f"got {len(value)}"
                    )

        else:

            def check(value: Any, path: str, errors: list[str], bound=bound) -> None:
                if isinstance(value, str) and len(value) > bound:
                    errors.append(
                        f"{path or '<record>'}: must be at most {bound} characters long, "
                        f"got {len(value)}"
                    )

        checks.append(check)
    if "pattern" in schema:
        pattern = schema["pattern"]
        try:
            search = re.compile(pattern).search  # JSON Schema patterns are unanchored
        except (re.error, TypeError) as exc:
            raise SchemaError(f"{where}.pattern: not a valid regular expression: {exc}") from exc

        def match(value: Any, path: str, errors: list[str]) -> None:
            if isinstance(value, str) and search(value) is None:
                errors.append(
                    f"{path or '<record>'}: does not match pattern {pattern}, got {_short(value)}"
                )

        checks.append(match)
    return checks


def _object_check(schema: Mapping[str, Any], where: str) -> Check:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, Mapping):
        raise SchemaError(f"{where}.properties: must be an object")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaError(f"{where}.required: must be a list of names")
    compiled = {
        name: compile_schema(sub, f"{where}.properties.{name}") for name, sub in properties.items()
    }
    additional = schema.get("additionalProperties", True)
    extra_check = None if additional is True else compile_schema(additional, where)

    def check(value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            return
        for name in required:
            if name not in value:
                errors.append(f"{_join(path, name)}: is required")
        for name, item in value.items():
            sub = compiled.get(name)
            if sub is not None:
                sub(item, _join(path, name), errors)
            elif additional is False:
                errors.append(f"{_join(path, name)}: is not an allowed field")
            elif extra_check is not None:
                extra_check(item, _join(path, name), errors)

    return check


def _items_check(items: Any, where: str) -> Check:
    item_check = compile_schema(items, f"{where}.items")

    def check(value: Any, path: str, errors: list[str]) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                item_check(item, f"{path}[{index}]", errors)

    return check


_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "properties",
        "required",
        "additionalProperties",
        "items",
    }
)


class RecordValidator:
    """A compiled input schema; ``errors(record, path)`` lists what is wrong with one record."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._check = compile_schema(schema)

    def errors(self, record: Any, path: str = "") -> list[str]:
        found: list[str] = []
        self._check(record, path, found)
        return found
