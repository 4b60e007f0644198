"""Unit tests of the REST JSON codec (no server): TF Serving's json_tensor.cc rules.

TensorFlow itself is the oracle for values: decoded requests are read back with
``tf.make_ndarray`` and compared with ``tf.constant`` of the same JSON data.
"""

from __future__ import annotations

import base64
import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import grpc
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    regression_pb2,
)

from graph_service.api.example_json import (
    classification_result_json,
    fill_example_request,
    regression_result_json,
)
from graph_service.api.json_body import (
    error_json,
    parse_json_object,
    signature_name_of,
)
from graph_service.api.tensor_json import (
    RequestFormat,
    fill_predict_inputs,
    predict_response_json,
)
from graph_service.api.tensor_to_json import float_tokens
from graph_service.errors import ServingError

DT = types_pb2


def infos(**dtypes: int) -> dict[str, meta_graph_pb2.TensorInfo]:
    return {
        name: meta_graph_pb2.TensorInfo(dtype=dt, name=f"{name}:0") for name, dt in dtypes.items()
    }


def decode(body: str | bytes, **dtypes: int) -> tuple[RequestFormat, dict[str, np.ndarray]]:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    request = predict_pb2.PredictRequest()
    doc = parse_json_object(raw)
    name = signature_name_of(doc)
    fmt = fill_predict_inputs(doc, infos(**dtypes), request.inputs, name)
    return fmt, {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def decode_error(body: str | bytes, **dtypes: int) -> ServingError:
    with pytest.raises(ServingError) as caught:
        decode(body, **dtypes)
    return caught.value


def proto(values, dtype) -> tensor_pb2.TensorProto:
    return tf.make_tensor_proto(values, dtype=dtype)


def encode(outputs: dict[str, tensor_pb2.TensorProto], fmt: RequestFormat):
    return json.loads(predict_response_json(outputs, fmt))


# ------------------------------------------------------------------ decoding: every dtype

VALID_VALUES = [
    (DT.DT_FLOAT, tf.float32, [[1.5, -2.0], [3, 0.1]]),
    (DT.DT_DOUBLE, tf.float64, [[1.5, -2.0], [3, 0.1]]),
    (DT.DT_HALF, tf.float16, [[1.5, -2.0], [3, 0.25]]),
    (DT.DT_BFLOAT16, tf.bfloat16, [[1.5, -2.0], [3, 0.25]]),
    (DT.DT_INT8, tf.int8, [[-128, 127], [0, 1]]),
    (DT.DT_INT16, tf.int16, [[-32768, 32767], [0, 1]]),
    (DT.DT_INT32, tf.int32, [[-(2**31), 2**31 - 1], [0, 1]]),
    (DT.DT_INT64, tf.int64, [[-(2**63), 2**63 - 1], [0, 1]]),
    (DT.DT_UINT8, tf.uint8, [[0, 255], [7, 1]]),
    (DT.DT_UINT16, tf.uint16, [[0, 65535], [7, 1]]),
    (DT.DT_UINT32, tf.uint32, [[0, 2**32 - 1], [7, 1]]),
    (DT.DT_UINT64, tf.uint64, [[0, 2**64 - 1], [7, 1]]),
    (DT.DT_BOOL, tf.bool, [[True, False], [False, True]]),
    (DT.DT_STRING, tf.string, [["a", "ü€"], ["", "x y"]]),
]


@pytest.mark.parametrize(("dtype", "tf_dtype", "value"), VALID_VALUES, ids=lambda v: str(v))
def test_every_dtype_decodes_like_tf_constant_in_both_formats(dtype, tf_dtype, value):
    expected = tf.constant(value, dtype=tf_dtype).numpy()
    fmt, columnar = decode(json.dumps({"inputs": value}), x=dtype)
    assert fmt is RequestFormat.COLUMNAR
    fmt, row = decode(json.dumps({"instances": value}), x=dtype)
    assert fmt is RequestFormat.ROW
    for got in (columnar["x"], row["x"]):
        assert got.dtype == expected.dtype
        assert got.shape == (2, 2)
        np.testing.assert_array_equal(got, expected)


def test_scalar_and_empty_tensors_in_columnar_format():
    assert decode('{"inputs": 7}', x=DT.DT_INT32)[1]["x"].shape == ()
    assert decode('{"inputs": 7}', x=DT.DT_INT32)[1]["x"] == 7
    assert decode('{"inputs": []}', x=DT.DT_FLOAT)[1]["x"].shape == (0,)
    assert decode('{"inputs": [[], []]}', x=DT.DT_FLOAT)[1]["x"].shape == (2, 0)


def test_deep_nesting_keeps_the_shape():
    value = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    _, got = decode(json.dumps({"instances": value.tolist()}), x=DT.DT_FLOAT)
    np.testing.assert_array_equal(got["x"], value)


def test_row_format_stacks_named_inputs_per_instance():
    body = {
        "signature_name": "serving_default",
        "instances": [
            {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
            {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
        ],
    }
    _, got = decode(json.dumps(body), tag=DT.DT_STRING, signal=DT.DT_INT32, sensor=DT.DT_FLOAT)
    np.testing.assert_array_equal(got["tag"], [b"foo", b"bar"])
    np.testing.assert_array_equal(got["signal"], [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]])
    assert got["sensor"].shape == (2, 2, 2)
    assert got["sensor"][1, 1, 1] == 8.0


def test_columnar_format_allows_different_0th_dims_and_ignores_unknown_keys():
    body = {"inputs": {"a": [[1.0, 2.0]], "b": [3, 4, 5], "not_an_input": "x"}}
    fmt, got = decode(json.dumps(body), a=DT.DT_FLOAT, b=DT.DT_INT64)
    assert fmt is RequestFormat.COLUMNAR
    assert got["a"].shape == (1, 2)
    np.testing.assert_array_equal(got["b"], [3, 4, 5])
    assert set(got) == {"a", "b"}


def test_b64_values_decode_to_bytes_with_or_without_padding():
    payload = bytes(range(256))
    encoded = base64.b64encode(payload).decode()
    body = {"instances": [{"b64": encoded}, {"b64": encoded.rstrip("=")}, "text"]}
    _, got = decode(json.dumps(body), x=DT.DT_STRING)
    assert list(got["x"]) == [payload, payload, b"text"]


def test_nan_and_infinity_tokens_are_accepted():
    _, got = decode('{"inputs": [NaN, Infinity, -Infinity, 1e38]}', x=DT.DT_FLOAT)
    assert math.isnan(got["x"][0])
    assert got["x"][1] == np.inf and got["x"][2] == -np.inf
    assert got["x"][3] == np.float32(1e38)


def test_float_literals_round_to_the_nearest_float32_like_tensorflow():
    values = [0.1, 1 / 3, 16777216.0, 16777215, -0.0, 3.4028234663852886e38, 1e-45]
    _, got = decode(json.dumps({"inputs": values}), x=DT.DT_FLOAT)
    np.testing.assert_array_equal(got["x"], tf.constant(values, dtype=tf.float32).numpy())


# ------------------------------------------------------------------ decoding: bad input


@pytest.mark.parametrize(
    ("body", "dtypes", "message"),
    [
        ("", {"x": DT.DT_FLOAT}, "JSON Parse error: The document is empty"),
        ("   ", {"x": DT.DT_FLOAT}, "JSON Parse error: The document is empty."),
        ("instances = [1, 2]", {"x": DT.DT_FLOAT}, "JSON Parse error: Invalid value. at offset: 0"),
        ('{"instances": [1, 2}', {"x": DT.DT_FLOAT}, "JSON Parse error: Missing a comma"),
        (b'{"instances": ["\xff"]}', {"x": DT.DT_STRING}, "JSON Parse error: Invalid encoding"),
        ("[1, 2]", {"x": DT.DT_FLOAT}, "Is not object"),
        ('{"signature_name": 100}', {"x": DT.DT_FLOAT}, "'signature_name' key must be a string"),
        ('{"instances": [1], "inputs": [1]}', {"x": DT.DT_FLOAT},
         "expecting only one of 'inputs' or 'instances' keys to exist"),
        ('{"instances": 1}', {"x": DT.DT_FLOAT}, "Excepting 'instances' to be an list/array"),
        ('{"instances": []}', {"x": DT.DT_FLOAT}, "No values in 'instances' array"),
        ('{"signature_name": "x"}', {"x": DT.DT_FLOAT}, "Missing 'inputs' or 'instances' key"),
        ('{"instances": ["x", "y"]}', {"x": DT.DT_FLOAT},
         'Failed to process element: 0 of \'instances\' list. Error: INVALID_ARGUMENT: '
         'JSON Value: "x" Type: String is not of expected type: float'),
        ('{"inputs": [[1, 2], [3]]}', {"x": DT.DT_FLOAT},
         "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        ('{"inputs": [[1, 2], 3]}', {"x": DT.DT_FLOAT},
         "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
        ('{"inputs": [1, [2]]}', {"x": DT.DT_FLOAT},
         "Encountered list at unexpected level: 1 expected < 1"),
        ('{"instances": [[1, 2], [3]]}', {"x": DT.DT_FLOAT},
         "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
         "Expecting tensor size: 2 but got: 1"),
        ('{"instances": [[[1, 2]], [[3], [4]]]}', {"x": DT.DT_FLOAT},
         "Expecting shape [1,2] but got: [2,1]"),
        ('{"instances": [1, 2]}', {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "instances is a plain list, but expecting list of objects"),
        ('{"inputs": [1, 2]}', {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "inputs is a plain value/list, but expecting an object"),
        ('{"inputs": {"a": [1]}}', {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "Missing named input: b in 'inputs' object."),
        ('{"instances": [{"a": 1, "b": 2}, {"a": 1}]}', {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "Failed to process element: 1 of 'instances' list. JSON object:"),
        ('{"instances": [{"a": 1, "b": 2}, {"a": 1, "c": 2}]}',
         {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "Failed to process element: 1 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
         "JSON object: does not have named input: c"),
        ('{"instances": [{"a": 1, "b": 2}, [1, 2]]}', {"a": DT.DT_FLOAT, "b": DT.DT_FLOAT},
         "Expecting object but got list at item 1 of input list"),
        ('{"instances": [1, {"a": 1}]}', {"a": DT.DT_FLOAT},
         "Expecting value/list but got object at item 1 of input list"),
        ('{"inputs": [{"b64": "!!!!"}]}', {"x": DT.DT_STRING}, "Unable to base64 decode"),
        ('{"inputs": [{"b64": 1}]}', {"x": DT.DT_STRING},
         "not formatted correctly for base64 data"),
        ('{"inputs": [{"b64": "AA=="}]}', {"x": DT.DT_FLOAT}, "is not of expected type: float"),
        ('{"inputs": [true]}', {"x": DT.DT_FLOAT},
         "JSON Value: true Type: True is not of expected type: float"),
        ('{"inputs": [null]}', {"x": DT.DT_DOUBLE}, "Type: Null is not of expected type: double"),
        ('{"inputs": [1.5]}', {"x": DT.DT_INT32},
         "JSON Value: 1.5 Type: Number is not of expected type: int32"),
        ('{"inputs": [1]}', {"x": DT.DT_BOOL}, "is not of expected type: bool"),
        ('{"inputs": [1]}', {"x": DT.DT_STRING}, "is not of expected type: string"),
        ('{"inputs": [1.5]}', {"x": DT.DT_COMPLEX64}, "Conversion of JSON Value: 1.5"),
    ],
)
def test_malformed_requests_get_tf_serving_messages(body, dtypes, message):
    error = decode_error(body, **dtypes)
    assert message in error.message
    expected = (
        grpc.StatusCode.UNIMPLEMENTED if DT.DT_COMPLEX64 in dtypes.values()
        else grpc.StatusCode.INVALID_ARGUMENT
    )
    assert error.code == expected


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (DT.DT_INT8, 128), (DT.DT_INT8, -129), (DT.DT_UINT8, 256), (DT.DT_UINT8, -1),
        (DT.DT_INT16, 32768), (DT.DT_UINT16, 65536), (DT.DT_INT32, 2**31),
        (DT.DT_UINT32, 2**32), (DT.DT_INT64, 2**63), (DT.DT_UINT64, 2**64),
        (DT.DT_UINT64, -1), (DT.DT_INT64, 10**30),
    ],
)
def test_out_of_range_integers_are_rejected(dtype, value):
    error = decode_error(json.dumps({"inputs": [1, value]}), x=dtype)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"JSON Value: {value} Type: Number is not of expected type" in error.message


def test_huge_numbers_are_rejected_not_silently_rounded():
    too_big = decode_error('{"inputs": [1.0, 1e400]}', x=DT.DT_DOUBLE)
    assert "Number too big to be stored in double" in too_big.message
    lossy = decode_error('{"inputs": [1e39]}', x=DT.DT_FLOAT)
    assert "to float without loss of precision" in lossy.message
    lossy_int = decode_error('{"inputs": [16777217]}', x=DT.DT_FLOAT)
    assert "Cannot convert JSON value: 16777217 to float without loss" in lossy_int.message
    assert decode('{"inputs": [16777215]}', x=DT.DT_FLOAT)[1]["x"][0] == 16777215
    assert decode('{"inputs": [1e300]}', x=DT.DT_DOUBLE)[1]["x"][0] == 1e300
    digits = decode_error('{"inputs": [' + "9" * 5000 + "]}", x=DT.DT_INT64)
    assert "JSON Parse error" in digits.message


def test_deeply_nested_json_is_a_clear_error_not_a_crash():
    deep = '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "nested too deeply" in decode_error(deep, x=DT.DT_FLOAT).message
    rank_300 = '{"inputs": ' + "[" * 300 + "1" + "]" * 300 + "}"
    assert "at most 254 dimensions" in decode_error(rank_300, x=DT.DT_FLOAT).message


def test_first_error_is_reported_in_tf_serving_order():
    # The type error at [0][1] comes before the ragged row at [1] in a depth-first walk.
    error = decode_error('{"inputs": [[1, "x"], [1]]}', x=DT.DT_FLOAT)
    assert 'JSON Value: "x" Type: String' in error.message


def test_empty_signature_inputs_name_the_signature():
    request = predict_pb2.PredictRequest()
    with pytest.raises(ServingError, match="Failed to get input map for signature: DEFAULT"):
        fill_predict_inputs({"instances": [1]}, {}, request.inputs)


# ------------------------------------------------------------------ encoding


def test_single_output_is_a_plain_list_and_several_are_objects():
    y = proto([[2.5], [3.0]], tf.float32)
    z = proto([1, 2], tf.int64)
    assert encode({"y": y}, RequestFormat.ROW) == {"predictions": [[2.5], [3.0]]}
    assert encode({"y": y}, RequestFormat.COLUMNAR) == {"outputs": [[2.5], [3.0]]}
    assert encode({"y": y, "z": z}, RequestFormat.ROW) == {
        "predictions": [{"y": [2.5], "z": 1}, {"y": [3.0], "z": 2}]
    }
    assert encode({"y": y, "z": z}, RequestFormat.COLUMNAR) == {
        "outputs": {"y": [[2.5], [3.0]], "z": [1, 2]}
    }
    odd_names = {'p%s "q"': y, "ü": z}
    assert encode(odd_names, RequestFormat.ROW) == {
        "predictions": [{'p%s "q"': [2.5], "ü": 1}, {'p%s "q"': [3.0], "ü": 2}]
    }


@pytest.mark.parametrize(
    ("values", "tf_dtype", "expected"),
    [
        ([[1, -2], [3, 4]], tf.int8, [[1, -2], [3, 4]]),
        ([[1, 2], [3, 4]], tf.uint16, [[1, 2], [3, 4]]),
        ([2**63 - 1, -(2**63)], tf.int64, [2**63 - 1, -(2**63)]),
        ([2**64 - 1, 0], tf.uint64, [2**64 - 1, 0]),
        ([True, False], tf.bool, [True, False]),
        ([0.5, -1.25], tf.float16, [0.5, -1.25]),
        ([0.5, -1.25], tf.bfloat16, [0.5, -1.25]),
        ([b"caf\xc3\xa9", b""], tf.string, ["café", ""]),
    ],
)
def test_every_dtype_encodes(values, tf_dtype, expected):
    if tf_dtype != tf.string:
        values = np.array(values, dtype=tf_dtype.as_numpy_dtype)
    assert encode({"out": proto(values, tf_dtype)}, RequestFormat.COLUMNAR) == {
        "outputs": expected
    }


def test_typed_value_fields_and_short_value_lists_are_expanded():
    # Tensor::AsProtoField answers in *_val fields; a short list repeats its last value.
    tensor = tensor_pb2.TensorProto(dtype=DT.DT_FLOAT, float_val=[1.5, 2.5])
    tensor.tensor_shape.dim.add().size = 2
    tensor.tensor_shape.dim.add().size = 2
    assert encode({"y": tensor}, RequestFormat.COLUMNAR) == {"outputs": [[1.5, 2.5], [2.5, 2.5]]}
    bits = int(np.float16(-1.5).view(np.uint16))
    half = tensor_pb2.TensorProto(dtype=DT.DT_HALF, half_val=[bits])
    half.tensor_shape.dim.add().size = 1
    assert encode({"h": half}, RequestFormat.COLUMNAR) == {"outputs": [-1.5]}
    ints = tensor_pb2.TensorProto(dtype=DT.DT_INT32)
    ints.tensor_shape.dim.add().size = 3
    assert encode({"i": ints}, RequestFormat.COLUMNAR) == {"outputs": [0, 0, 0]}


def test_bytes_outputs_are_b64_and_text_outputs_are_strings():
    raw = [b"\x00\xff\x10", b"ok"]
    out = encode(
        {"text_bytes": proto(raw, tf.string), "text": proto([b"hi", b"yo"], tf.string)},
        RequestFormat.ROW,
    )
    assert [base64.b64decode(p["text_bytes"]["b64"]) for p in out["predictions"]] == raw
    assert [p["text"] for p in out["predictions"]] == ["hi", "yo"]


def test_nan_and_infinity_are_written_bare():
    body = predict_response_json(
        {"y": proto([np.nan, np.inf, -np.inf, 1.0], tf.float32)}, RequestFormat.COLUMNAR
    )
    assert body == b'{"outputs":[NaN,Infinity,-Infinity,1.0]}'
    back = json.loads(body)["outputs"]
    assert math.isnan(back[0]) and back[1] == math.inf and back[2] == -math.inf


def test_float_text_matches_tf_serving_write_decimal():
    # TF Serving: %g when it round-trips, else max_digits10; '.0' on whole numbers.
    values = np.array([2.5, 3.0, 0.1, 1e-5, 16777216.0, 1234567.0, -0.0, 1e20], np.float32)
    assert float_tokens(values, single=True) == [
        "2.5", "3.0", "0.1", "1e-05", "16777216.0", "1234567.0", "-0.0", "1e+20",
    ]
    assert float_tokens(np.array([0.1, 1 / 3, 1e100]), single=False) == [
        "0.1", "0.33333333333333331", "1e+100",
    ]


def test_float32_and_float64_survive_a_json_round_trip_exactly():
    rng = np.random.default_rng(7)
    singles = np.concatenate([
        rng.standard_normal(2000).astype(np.float32) * np.float32(1e3),
        rng.uniform(-1, 1, 500).astype(np.float32) * np.float32(1e-30),
        np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45], np.float32),
    ])
    doubles = np.concatenate([rng.standard_normal(2000) * 1e10, [np.finfo(np.float64).max, 5e-324]])
    out = encode(
        {"f": proto(singles, tf.float32), "d": proto(doubles, tf.float64)},
        RequestFormat.COLUMNAR,
    )["outputs"]
    np.testing.assert_array_equal(np.array(out["f"], dtype=np.float32), singles)
    np.testing.assert_array_equal(np.array(out["d"], dtype=np.float64), doubles)


def test_small_and_large_arrays_are_written_identically():
    # Short arrays take a pure-Python path, long ones a vectorised one: same text.
    rng = np.random.default_rng(11)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 0.1, 1e-45, 3.4028235e38, 123456789.0]
    singles = np.concatenate([specials, rng.standard_normal(200) * 1e5]).astype(np.float32)
    doubles = np.concatenate([specials, rng.standard_normal(200) * 1e-5, [5e-324, 1.7e308]])
    for values, single in ((singles, True), (doubles, False)):
        whole = float_tokens(values, single)
        chunks = [values[i : i + 4] for i in range(0, len(values), 4)]
        pieces = [token for chunk in chunks for token in float_tokens(chunk, single)]
        assert whole == pieces


def test_float32_input_round_trips_through_request_and_response():
    values = np.random.default_rng(3).standard_normal(300).astype(np.float32)
    text = predict_response_json({"x": proto(values, tf.float32)}, RequestFormat.COLUMNAR)
    body = b'{"inputs":' + text[len(b'{"outputs":'):-1] + b"}"
    _, got = decode(body, x=DT.DT_FLOAT)
    np.testing.assert_array_equal(got["x"], values)


def test_row_answers_need_one_consistent_batch_dimension():
    with pytest.raises(ServingError, match="has inconsistent batch size: 3 expecting: 2"):
        predict_response_json(
            {"a": proto([1, 2], tf.int32), "b": proto([1, 2, 3], tf.int32)}, RequestFormat.ROW
        )
    with pytest.raises(ServingError, match="has no shape information"):
        predict_response_json({"a": proto(1, tf.int32)}, RequestFormat.ROW)
    with pytest.raises(ServingError, match="Cannot convert empty tensor map to JSON"):
        predict_response_json({}, RequestFormat.ROW)
    assert encode({"a": proto(1, tf.int32)}, RequestFormat.COLUMNAR) == {"outputs": 1}


def test_empty_dimensions_are_written_as_empty_lists():
    assert encode({"e": proto(np.zeros((2, 0, 3), np.float32), tf.float32)},
                  RequestFormat.COLUMNAR) == {"outputs": [[], []]}
    assert encode({"e": proto(np.zeros((2, 3, 0), np.int32), tf.int32)},
                  RequestFormat.ROW) == {"predictions": [[[], [], []], [[], [], []]]}


def test_error_body_is_json_with_the_message():
    assert json.loads(error_json('bad "quote"\n ü')) == {"error": 'bad "quote"\n ü'}


# ------------------------------------------------------------------ classify / regress


def fill_examples(body: dict, request=None):
    request = request or classification_pb2.ClassificationRequest()
    fill_example_request(parse_json_object(json.dumps(body).encode()), request)
    return request


def test_examples_become_tf_examples_with_the_right_feature_kinds():
    image = b"\x89PNG\x00"
    request = fill_examples({
        "signature_name": "classify_x_to_y",
        "examples": [
            {
                "x": 1.5,
                "n": 3,
                "flag": True,
                "s": "seaside",
                "img": {"b64": base64.b64encode(image).decode()},
            },
            {"x": [1.0, 2.5], "n": [1, 2], "s": ["a", "b"], "empty": []},
        ],
    })
    assert request.model_spec.signature_name == "classify_x_to_y"
    first, second = request.input.example_list.examples
    features = first.features.feature
    assert list(features["x"].float_list.value) == [1.5]
    assert list(features["n"].int64_list.value) == [3]
    assert list(features["flag"].int64_list.value) == [1]
    assert list(features["s"].bytes_list.value) == [b"seaside"]
    assert list(features["img"].bytes_list.value) == [image]
    assert list(second.features.feature["x"].float_list.value) == [1.0, 2.5]
    assert second.features.feature["empty"].WhichOneof("kind") is None
    # The protos parse as TensorFlow parses tf.Example.
    parsed = tf.io.parse_example(
        [e.SerializeToString() for e in (first, second)],
        {"n": tf.io.VarLenFeature(tf.int64)},
    )
    assert tf.sparse.to_dense(parsed["n"]).numpy().tolist() == [[3, 0], [1, 2]]


def test_context_goes_into_example_list_with_context():
    request = fill_examples(
        {"context": {"country": "ch"}, "examples": [{"x": 1.0}, {"x": 2.0}]},
        regression_pb2.RegressionRequest(),
    )
    with_context = request.input.example_list_with_context
    assert list(with_context.context.features.feature["country"].bytes_list.value) == [b"ch"]
    assert len(with_context.examples) == 2
    assert request.input.WhichOneof("kind") == "example_list_with_context"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [1]}, "When method is classify, key 'examples' is expected"),
        ({"examples": {"x": 1}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [{"x": [[1]]}]}, "Feature: x has element with unexpected JSON type: Array"),
        ({"examples": [{"x": {"a": 1}}]}, "Feature: x has element with unexpected JSON type: Obj"),
        ({"examples": [{"x": [1, 2.5]}]}, "element type in feature: x expecting type: int64"),
        ({"examples": [{"x": [2.5, "a"]}]}, "element type in feature: x expecting type: float"),
        ({"examples": [{"x": ["a", 1]}]}, "element type in feature: x expecting type: bytes"),
        ({"examples": [{"x": 2**64 - 1}]}, "x has uint64 element. Only int64 is supported"),
        ({"examples": [{"x": 1e39}]}, "to float without loss of precision"),
        ({"examples": [{"x": {"b64": "%%%"}}]}, "Unable to base64 decode"),
        ({"context": [1], "examples": [{"x": 1}]}, "Example must be JSON object but got JSON Arr"),
    ],
)
def test_bad_examples_get_tf_serving_messages(body, message):
    with pytest.raises(ServingError) as caught:
        fill_examples(body)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.message


def test_classification_and_regression_results_json():
    result = classification_pb2.ClassificationResult()
    classes = result.classifications.add().classes
    classes.add(label="cat", score=0.1)
    classes.add(label="", score=12.0)
    result.classifications.add().classes.add(label="dog", score=float("nan"))
    body = classification_result_json(result)
    assert body == b'{"results":[[["cat",0.1],["",12.0]],[["dog",NaN]]]}'
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=42.0)
    regression.regressions.add(value=0.2)
    assert json.loads(regression_result_json(regression)) == {"results": [42.0, 0.2]}
    with pytest.raises(ServingError, match="Cannot convert empty RegressionResults to JSON"):
        regression_result_json(regression_pb2.RegressionResult())
