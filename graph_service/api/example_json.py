"""The classify/regress APIs' JSON: ``examples`` (+ ``context``) in, ``results`` out.

Follows TF Serving's json_tensor.cc: each example is an object of features; a JSON
integer (or bool) becomes an int64_list, a decimal a float_list, a string or
``{"b64": ...}`` a bytes_list, and one feature may not mix kinds. Results are written
with TF Serving's float text (see ``tensor_to_json``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, regression_pb2

from graph_service.api.json_body import (
    JsonConstant,
    json_type_str,
    json_value_str,
    lossy_decimal_error,
    number_too_big_error,
    signature_name_of,
)
from graph_service.api.json_to_tensor import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    b64_decode,
    is_b64_object,
)
from graph_service.api.tensor_to_json import float_tokens, json_string
from graph_service.errors import invalid_argument

ExampleRequest = classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest

_FLOAT_MAX = float(np.finfo(np.float32).max)
_FLOAT_TYPES = frozenset({float, JsonConstant})


def fill_example_request(doc: Mapping[str, Any], request: ExampleRequest) -> None:
    """FillClassifyRegressRequestFromJson: signature name, context and examples."""
    signature_name = signature_name_of(doc)
    if signature_name:
        request.model_spec.signature_name = signature_name
    has_context = "context" in doc
    if has_context:
        _fill_example(doc["context"], request.input.example_list_with_context.context)
    if "examples" not in doc:
        # TF Serving says "classify" here for regress requests too.
        raise invalid_argument(
            f"JSON Value: {json_value_str(doc)} When method is classify, key 'examples' "
            "is expected and was not found"
        )
    examples = doc["examples"]
    if type(examples) is not list:
        raise invalid_argument(
            f"JSON Value: {json_value_str(doc)} Expecting 'examples' value to be an list/array"
        )
    if not examples:
        raise invalid_argument(
            f"JSON Value: {json_value_str(doc)} 'examples' value is an empty array"
        )
    target = (
        request.input.example_list_with_context.examples
        if has_context
        else request.input.example_list.examples
    )
    for example in examples:
        _fill_example(example, target.add())


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if type(value) is not dict:
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type_str(value)}")
    features = example.features.feature
    for name, content in value.items():
        _fill_feature(content if type(content) is list else [content], name, features[name])


def _fill_feature(values: list[Any], name: str, feature: feature_pb2.Feature) -> None:
    """The common homogeneous lists in one C-level pass each; anything else value by value."""
    types = set(map(type, values))
    if types == {str}:
        feature.bytes_list.value.extend([_utf8(s) for s in values])
        return
    if types == {int} and min(values) >= INT64_MIN and max(values) <= INT64_MAX:
        feature.int64_list.value.extend(values)
        return
    if types and types <= _FLOAT_TYPES and all(
        type(v) is JsonConstant or abs(v) <= _FLOAT_MAX for v in values
    ):
        feature.float_list.value.extend(values)
        return
    for value in values:
        _add_feature_value(value, name, feature)


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    """AddValueToFeature: one value, with TF Serving's checks and messages in its order."""
    kind = type(value)
    if value is None or kind is list or (kind is dict and not is_b64_object(value)):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type_str(value)}"
        )
    if kind is bool:
        _expect_kind(feature, "int64_list", name)
        feature.int64_list.value.append(int(value))
    elif kind is dict:
        _expect_kind(feature, "bytes_list", name)
        feature.bytes_list.value.append(b64_decode(value))
    elif kind is str:
        _expect_kind(feature, "bytes_list", name)
        feature.bytes_list.value.append(_utf8(value))
    elif kind is int and value <= UINT64_MAX and value >= INT64_MIN:
        _expect_kind(feature, "int64_list", name)
        if value > INT64_MAX:
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        feature.int64_list.value.append(value)
    else:  # a decimal, or an integer beyond 64 bits (which rapidjson holds as a double)
        _expect_kind(feature, "float_list", name)
        if kind is float and value in (float("inf"), float("-inf")):
            raise number_too_big_error()
        if kind is not JsonConstant and abs(value) > _FLOAT_MAX:
            raise lossy_decimal_error(value, "float")
        feature.float_list.value.append(float(value))


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\\ud800"
        raise invalid_argument(
            "JSON Parse error: The surrogate pair in string is invalid."
        ) from None


_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def _expect_kind(feature: feature_pb2.Feature, kind: str, name: str) -> None:
    current = feature.WhichOneof("kind")
    if current is not None and current != kind:
        raise invalid_argument(
            f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[current]}"
        )


def classification_result_json(result: classification_pb2.ClassificationResult) -> bytes:
    """MakeJsonFromClassificationResult: ``{"results": [[[label, score], ...], ...]}``."""
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    parts = []
    for classifications in result.classifications:
        classes = classifications.classes
        scores = float_tokens(np.array([c.score for c in classes], dtype=np.float32), True)
        pairs = (
            "[" + json_string(c.label) + "," + score + "]"
            for c, score in zip(classes, scores, strict=True)
        )
        parts.append("[" + ",".join(pairs) + "]")
    return ('{"results":[' + ",".join(parts) + "]}").encode("utf-8")


def regression_result_json(result: regression_pb2.RegressionResult) -> bytes:
    """MakeJsonFromRegressionResult: ``{"results": [value, ...]}``."""
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = np.array([r.value for r in result.regressions], dtype=np.float32)
    return ('{"results":[' + ",".join(float_tokens(values, True)) + "]}").encode("utf-8")

