"""The predict API's JSON: ``instances``/``inputs`` in, ``predictions``/``outputs`` out.

Follows TF Serving's json_tensor.cc (FillPredictRequestFromJson, MakeJsonFromTensors):
row requests list one entry per example (a value, or an object of named inputs), all
stacked along a new 0th dimension; columnar requests give whole tensors. The answer
mirrors the request's format. Tensor-level rules live in ``json_to_tensor`` and
``tensor_to_json``; request-body parsing and message wording in ``json_body``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, MutableMapping
from typing import Any

from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from graph_service.api.json_body import json_value_str, status_str
from graph_service.api.json_to_tensor import is_b64_object, json_to_tensor
from graph_service.api.tensor_to_json import group_tokens, json_string, nest_tokens, tensor_tokens
from graph_service.errors import ServingError, invalid_argument

TensorInfoMap = Mapping[str, meta_graph_pb2.TensorInfo]
TensorMap = MutableMapping[str, tensor_pb2.TensorProto]


class RequestFormat(enum.Enum):
    """Which predict format the caller used; the answer is written in the same one."""

    ROW = "instances"
    COLUMNAR = "inputs"


def fill_predict_inputs(
    doc: Mapping[str, Any],
    input_infos: TensorInfoMap,
    inputs: TensorMap,
    signature_name: str = "",
) -> RequestFormat:
    """Decodes ``instances`` or ``inputs`` of a parsed body into ``inputs`` (a request's map).

    ``input_infos`` is the signature's inputs: their names and dtypes decide the tensors.
    """
    if not input_infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    if "instances" in doc:
        if "inputs" in doc:
            raise invalid_argument(
                f"JSON Value: {json_value_str(doc)} Not formatted correctly expecting only "
                "one of 'inputs' or 'instances' keys to exist "
            )
        instances = doc["instances"]
        if type(instances) is not list:
            raise invalid_argument(
                f"JSON Value: {json_value_str(doc)} Excepting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {json_value_str(doc)} No values in 'instances' array"
            )
        _fill_from_instances(instances, input_infos, inputs)
        return RequestFormat.ROW
    if "inputs" in doc:
        _fill_from_inputs(doc["inputs"], input_infos, inputs)
        return RequestFormat.COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_named_object(value: Any) -> bool:
    """An instance written as {input name: value}, as opposed to a b64 leaf."""
    return type(value) is dict and not is_b64_object(value)


class _NotUniform(Exception):
    """Some instance is not an object with exactly the signature's input names."""


def _fill_from_instances(instances: list[Any], infos: TensorInfoMap, inputs: TensorMap) -> None:
    named = _is_named_object(instances[0])
    if not named and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    try:
        if named:
            names = set(infos)
            if any(not _is_named_object(e) or e.keys() != names for e in instances):
                raise _NotUniform
            # Stacking every instance's value of one input is exactly the batched tensor.
            for name in sorted(infos):
                column = [element[name] for element in instances]
                json_to_tensor(column, infos[name].dtype, inputs[name])
        else:
            ((name, info),) = infos.items()
            json_to_tensor(instances, info.dtype, inputs[name])
    except (ServingError, _NotUniform) as fast_error:
        _raise_instances_error(instances, infos, named)
        if isinstance(fast_error, ServingError):
            raise
        raise AssertionError("instances rejected without a reportable error") from None


def _raise_instances_error(instances: list[Any], infos: TensorInfoMap, named: bool) -> None:
    """FillTensorMapFromInstancesList element by element, to raise TF Serving's message."""
    sizes: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    for index, element in enumerate(instances):
        if not named:
            if _is_named_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                _check_instance_item(element, next(iter(infos)), infos, sizes, shapes)
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {status_str(exc)}"
                ) from None
            continue
        if not _is_named_object(element):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        for name, value in element.items():
            try:
                _check_instance_item(value, name, infos, sizes, shapes)
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} key: {name} of 'instances' list. "
                    f"Error: {status_str(exc)}"
                ) from None
        if element.keys() != set(infos):
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{json_value_str(element)} keys must be equal to: {','.join(sorted(infos))}"
            )


def _check_instance_item(
    value: Any,
    name: str,
    infos: TensorInfoMap,
    sizes: dict[str, int],
    shapes: dict[str, list[int]],
) -> None:
    """AddInstanceItem: every instance of one input must have the same shape."""
    if name not in infos:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    scratch = tensor_pb2.TensorProto()
    json_to_tensor(value, infos[name].dtype, scratch)
    shape = [dim.size for dim in scratch.tensor_shape.dim]
    size = math.prod(shape)
    if name not in sizes:
        sizes[name], shapes[name] = size, shape
    elif sizes[name] != size:
        raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {size}")
    elif shapes[name] != shape:
        raise invalid_argument(
            f"Expecting shape [{','.join(map(str, shapes[name]))}] "
            f"but got: [{','.join(map(str, shape))}]"
        )


def _fill_from_inputs(value: Any, infos: TensorInfoMap, inputs: TensorMap) -> None:
    if type(value) is not dict or is_b64_object(value):
        if len(infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        ((name, info),) = infos.items()
        json_to_tensor(value, info.dtype, inputs[name])
        return
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        json_to_tensor(value[name], infos[name].dtype, inputs[name])


def predict_response_json(
    outputs: Mapping[str, tensor_pb2.TensorProto], request_format: RequestFormat
) -> bytes:
    """MakeJsonFromTensors. One output is written bare, several as objects keyed by name."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    encoded = [tensor_tokens(name, outputs[name]) for name in names]
    if request_format is RequestFormat.COLUMNAR:
        if len(names) == 1:
            body = nest_tokens(encoded[0][1], encoded[0][0])
        else:
            members = (
                json_string(name) + ":" + nest_tokens(tokens, shape)
                for name, (shape, tokens) in zip(names, encoded, strict=True)
            )
            body = "{" + ",".join(members) + "}"
        return ('{"outputs":' + body + "}").encode("utf-8")

    batch_size = 0
    for name, (shape, _tokens) in zip(names, encoded, strict=True):
        if not shape:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if shape[0] < 1:
            raise invalid_argument(f"Tensor name: {name} has invalid batch size: {shape[0]}")
        if batch_size and shape[0] != batch_size:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} "
                f"expecting: {batch_size}"
            )
        batch_size = shape[0]
    if len(names) == 1:
        body = nest_tokens(encoded[0][1], encoded[0][0])
    else:
        # One %-template per row object: the per-row work stays in C.
        keys = (json_string(name).replace("%", "%%") + ":%s" for name in names)
        template = "{" + ",".join(keys) + "}"
        columns = [group_tokens(tokens, shape) for shape, tokens in encoded]
        body = "[" + ",".join(map(template.__mod__, zip(*columns, strict=True))) + "]"
    return ('{"predictions":' + body + "}").encode("utf-8")
