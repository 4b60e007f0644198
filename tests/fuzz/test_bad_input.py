"""Property-based bad input (hypothesis) against both tiers' predict APIs on loopback.

Logic tier: ctr records with fields dropped, retyped or replaced by any JSON,
batches of them, and raw bytes that are barely JSON (NaN, deep nesting, huge
numbers, broken UTF-8): never a 5xx, every 4xx our JSON error body.
Graph tier (TF Serving's REST API): wrong dtypes, ragged lists, huge or
negative dimensions, broken base64, deep nesting, NaN, empty bodies: always a
TF Serving-style ``{"error": "..."}`` and the server keeps answering.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fault_stack import CTR, EXAMPLE, PLAIN, Logic, Stack

from .test_logic_openapi import check_answer

BUDGET = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_records(draw: st.DrawFn) -> dict[str, Any]:
    record = dict(EXAMPLE)
    for field in draw(st.lists(st.sampled_from(sorted(EXAMPLE)), max_size=4, unique=True)):
        if draw(st.booleans()):
            del record[field]
        else:
            record[field] = draw(json_values)
    if draw(st.booleans()):
        record[draw(st.text(max_size=10))] = draw(json_values)
    return record


def _bodies_as_text(value: Any) -> str:
    import json

    return json.dumps(value, allow_nan=True)


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.just(b""),
    st.just(b"NaN"),
    st.just(b'{"userId": NaN}'),
    st.just(b'{"userId": Infinity}'),
    st.just(b'{"userId": 1e400}'),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b'{"userId": "\xff\xfe"}'),
    mutated_records().map(lambda r: _bodies_as_text(r).encode()),
)


def test_mutated_ctr_records_are_scored_or_refused(logic: Logic, tally: Counter) -> None:
    url = f"{logic.url}/v1/models/{CTR}/predict"

    @given(
        body=mutated_records()
        | st.builds(lambda rs: {"records": rs}, st.lists(mutated_records(), max_size=5))
    )
    @BUDGET
    def run(body: dict[str, Any]) -> None:
        response = httpx.post(url, json=body, timeout=10)
        tally[f"records {response.status_code}"] += 1
        check_answer(response, repr(body)[:300])
        if response.status_code == 200:
            answer = response.json()
            scores = [answer["prediction"]] if answer.get("prediction") else answer["predictions"]
            assert all(
                math.isfinite(p["score"][0] if isinstance(p["score"], list) else p["score"])
                for p in scores
            )

    run()


def test_raw_bodies_never_crash_the_logic_tier(logic: Logic, tally: Counter) -> None:
    urls = [f"{logic.url}/v1/models/{m}/predict" for m in (CTR, PLAIN)] + [
        f"{logic.url}/v1/feedback"
    ]

    @given(
        body=raw_bodies,
        url=st.sampled_from(urls),
        content_type=st.sampled_from(["application/json", "text/plain", ""]),
    )
    @BUDGET
    def run(body: bytes, url: str, content_type: str) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        tally[f"raw {response.status_code}"] += 1
        check_answer(response, repr(body)[:200])

    run()
    assert logic.ready()


# ---- graph tier ------------------------------------------------------------------------------

tensor_values = st.recursive(
    scalars
    | st.just(float("nan"))
    | st.just(float("inf"))
    | st.builds(lambda s: {"b64": s}, st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=16,
)
graph_bodies = st.one_of(
    st.builds(lambda v: {"instances": v}, tensor_values),
    st.builds(lambda v: {"inputs": v}, tensor_values),
    st.builds(lambda v: {"inputs": {"x": v}}, tensor_values),
    st.builds(lambda v: {"instances": [{"x": v}]}, tensor_values),
    st.builds(
        lambda v, s: {"signature_name": s, "instances": v}, tensor_values, st.text(max_size=10)
    ),
    st.builds(lambda n: {"instances": [[0.0] * 3] * n}, st.sampled_from([0, 1, 5000])),
    st.builds(
        lambda r: {"inputs": {"x": r}},
        st.lists(
            st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=5),
            max_size=4,
        ),
    ),
    json_values.map(lambda v: {"instances": v, "inputs": v}),
    json_values,
)
graph_raw = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.just(b'{"instances": [[NaN, 1, 2]]}'),
    st.just(b'{"instances": [{"b64": "!!!not base64"}]}'),
    st.integers(min_value=1, max_value=5000).map(
        lambda n: b'{"instances": ' + b"[" * n + b"]" * n + b"}"
    ),
)


@pytest.fixture(scope="module")
def graph_url(stack: Stack) -> str:
    return stack.graph.rest_url


def _check_graph(response: httpx.Response) -> None:
    assert response.status_code in (200, 400, 404, 413), response.text  # never a 5xx crash
    assert "Traceback" not in response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error, str) and error


def test_graph_rest_api_refuses_bad_tensors_tf_serving_style(
    graph_url: str, tally: Counter
) -> None:
    models = [
        f"{graph_url}/v1/models/{PLAIN}:predict",
        f"{graph_url}/v1/models/{PLAIN}:regress",
        f"{graph_url}/v1/models/{CTR}/versions/1:predict",
    ]

    @given(body=graph_bodies, url=st.sampled_from(models))
    @BUDGET
    def structured(body: Any, url: str) -> None:
        response = httpx.post(url, content=_bodies_as_text(body), timeout=30)
        tally[f"graph {response.status_code}"] += 1
        _check_graph(response)

    @given(body=graph_raw, url=st.sampled_from(models))
    @BUDGET
    def raw(body: bytes, url: str) -> None:
        response = httpx.post(url, content=body, timeout=30)
        tally[f"graph raw {response.status_code}"] += 1
        _check_graph(response)

    structured()
    raw()
    # still serving after all of it
    good = httpx.post(models[0], json={"instances": [[1.0, 2.0, 3.0]]}, timeout=10)
    assert good.status_code == 200 and good.json()["predictions"][0]["y"] == [6.0]


dims = st.sampled_from([-1, 0, 1, 2, 3, 1000, 2**31, 2**40, 2**62])


def test_graph_grpc_refuses_impossible_shapes(stack: Stack, tally: Counter) -> None:
    """Negative, huge and overflowing dimensions through gRPC: INVALID_ARGUMENT, never a crash."""
    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{stack.graph.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    @given(
        shape=st.lists(dims, max_size=4),
        dtype=st.sampled_from([types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_STRING]),
        values=st.integers(min_value=0, max_value=4),
    )
    @BUDGET
    def run(shape: list[int], dtype: int, values: int) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = PLAIN
        tensor = request.inputs["x"]
        tensor.dtype = dtype
        for size in shape:
            tensor.tensor_shape.dim.add().size = size
        if dtype == types_pb2.DT_STRING:
            tensor.string_val.extend([b"a"] * values)
        elif dtype == types_pb2.DT_FLOAT:
            tensor.float_val.extend([1.0] * values)
        else:
            tensor.int64_val.extend([1] * values)
        try:
            stub.Predict(request, timeout=30)
            tally["grpc OK"] += 1
        except grpc.RpcError as exc:
            tally[f"grpc {exc.code().name}"] += 1
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (shape, exc.details())

    try:
        run()
        good = predict_pb2.PredictRequest()
        good.model_spec.name = PLAIN
        good.inputs["x"].dtype = types_pb2.DT_FLOAT
        good.inputs["x"].tensor_shape.dim.add().size = 1
        good.inputs["x"].tensor_shape.dim.add().size = 3
        good.inputs["x"].float_val.extend([1.0, 2.0, 3.0])
        assert list(stub.Predict(good, timeout=10).outputs["y"].float_val) == [6.0]
    finally:
        channel.close()
