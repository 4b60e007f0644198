"""Request bodies of the REST API: parsing and the wording of JSON-related errors.

TF Serving parses with rapidjson (NaN/Infinity allowed) and quotes the offending
JSON in many messages; clients and conformance suites match on those texts, so the
texts live here, in one place, shared by the predict and classify/regress codecs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from graph_service.api.tensor_to_json import format_float
from graph_service.errors import ServingError, invalid_argument

_MESSAGE_VALUE_CHARS = 2000  # echoing a huge request back in an error helps nobody


class JsonConstant(float):
    """A ``NaN``/``Infinity``/``-Infinity`` token written by the client.

    Python's json also turns an overflowing literal such as ``1e999`` into ``inf``;
    TF Serving rejects that literal ("Number too big"), so infinities that came
    from a token must stay distinguishable from those that did not.
    """


_CONSTANTS = {name: JsonConstant(name) for name in ("NaN", "Infinity", "-Infinity")}
_decoder = json.JSONDecoder(parse_constant=_CONSTANTS.__getitem__)

# Python's json messages -> rapidjson's GetParseError_En texts that TF Serving shows.
_PARSE_MESSAGES = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':'", "Missing a colon after a name of object member."),
    ("Expecting ','", "Missing a comma or a closing bracket after a member or element."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\u", "Incorrect hex digit after \\u escape in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parses a request body as TF Serving does (NaN/Infinity allowed, object required)."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = _decoder.decode(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        if not body.strip():
            text = "The document is empty."
        else:
            text = next((tf for py, tf in _PARSE_MESSAGES if exc.msg.startswith(py)), exc.msg)
        raise invalid_argument(f"JSON Parse error: {text} at offset: {exc.pos}") from None
    except RecursionError:
        raise invalid_argument(
            "JSON Parse error: The document is nested too deeply to be parsed."
        ) from None
    except ValueError as exc:  # an integer literal with thousands of digits
        raise invalid_argument(f"JSON Parse error: Number too big to be stored. {exc}") from None
    if type(doc) is not dict:
        raise invalid_argument(f"JSON Value: {json_value_str(doc)} Is not object")
    return doc


def signature_name_of(doc: Mapping[str, Any]) -> str:
    """The optional ``signature_name`` key; '' means the default signature."""
    name = doc.get("signature_name", "")
    if type(name) is not str:
        raise invalid_argument(
            f"JSON Value: {json_value_str(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def json_value_str(value: Any) -> str:
    """A JSON value quoted in an error message (rapidjson PrettyWriter style, truncated)."""
    if type(value) is float or type(value) is JsonConstant:
        with np.errstate(over="ignore"):
            single = float(np.float32(value)) == value or value != value
        return format_float(value, single=single)
    try:
        text = json.dumps(value, indent=4, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = "<deeply nested value>"
    if len(text) > _MESSAGE_VALUE_CHARS:
        text = text[:_MESSAGE_VALUE_CHARS] + "...(truncated)"
    return text


def json_type_str(value: Any) -> str:
    """rapidjson's type names, as TF Serving prints them."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def status_str(error: ServingError) -> str:
    """absl::Status::ToString(), used where TF Serving nests one error in another."""
    return f"{error.code.name}: {error.message}"


def lossy_decimal_error(value: Any, target: str) -> ServingError:
    return invalid_argument(
        f"Cannot convert JSON value: {json_value_str(value)} to {target} "
        "without loss of precision."
    )


def number_too_big_error() -> ServingError:
    """rapidjson refuses literals beyond double range at parse time; we find them later."""
    return invalid_argument("JSON Parse error: Number too big to be stored in double.")


def error_json(message: str) -> bytes:
    """MakeJsonFromStatus: ``{"error": message}``."""
    return json.dumps({"error": message}).encode("ascii")
