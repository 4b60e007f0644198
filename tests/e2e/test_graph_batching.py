"""Micro-batching of graph calls (logic_service.graph.batching) against the real graph tier.

The batching client wraps the real gRPC and REST clients and calls the session's
``graph_service``: concurrent callers are merged into one call and each gets its
own rows back; one caller's bad tensors fail only that caller; through the logic
tier, a burst of requests shows up as merged calls in /metrics.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import pytest
from support.graph_tier import GraphTier

from logic_service.graph.batching import BatchingGraphClient
from logic_service.graph.client import GraphRejected
from logic_service.graph.grpc_client import GrpcGraphClient
from logic_service.graph.rest_client import RestGraphClient
from logic_service.settings import GraphBatchingSettings

from .stack import GUARDED_MODEL, TENSOR_MODEL, LogicTier

CALLERS = 20


def _client(graph: GraphTier, protocol: str):
    if protocol == "grpc":
        return GrpcGraphClient(f"127.0.0.1:{graph.grpc_port}")
    return RestGraphClient(graph.rest_url)


def _rows(caller: int, count: int = 1) -> np.ndarray:
    """Rows that identify their caller: [c, c + 0.5, c + 0.25] (+ 10 per extra row)."""
    base = np.array([caller, caller + 0.5, caller + 0.25], np.float32)
    return np.stack([base + 10 * i for i in range(count)])


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_concurrent_callers_share_one_call_and_get_their_own_rows(
    graph: GraphTier, protocol: str
) -> None:
    batches: list[int] = []

    async def main() -> list[dict[str, np.ndarray]]:
        client = BatchingGraphClient(
            _client(graph, protocol), GraphBatchingSettings(max_rows=64, max_in_flight=1),
            lambda _model, rows: batches.append(rows),
        )
        try:
            calls = [
                client.predict(TENSOR_MODEL, 1, "serving_default", {"x": _rows(c, 1 + c % 3)},
                               ["y", "z"], 10.0)
                for c in range(CALLERS)
            ]
            return await asyncio.gather(*calls)
        finally:
            await client.close()

    results = asyncio.run(main())
    for caller, result in enumerate(results):
        x = _rows(caller, 1 + caller % 3)
        np.testing.assert_allclose(result["y"], x.sum(axis=1, keepdims=True), rtol=1e-6)
        np.testing.assert_allclose(result["z"][:, 0], x[:, 0] * 2, rtol=1e-6)
    # The first caller went alone (nothing in flight); the other 19 waited for it
    # and left together as one call of all their rows.
    assert batches == [sum(1 + c % 3 for c in range(1, CALLERS))]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_a_bad_tensor_fails_only_its_caller(graph: GraphTier, protocol: str) -> None:
    async def main() -> list[object]:
        client = BatchingGraphClient(
            _client(graph, protocol), GraphBatchingSettings(max_rows=64, max_in_flight=1)
        )
        try:
            calls = []
            for caller in range(CALLERS):
                x = _rows(caller)
                if caller % 5 == 4:
                    x = -x - 1  # negative: the model's assertion fails the run
                calls.append(
                    client.predict(GUARDED_MODEL, 1, "serving_default", {"x": x}, ["y"], 10.0)
                )
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.close()

    results = asyncio.run(main())
    for caller, result in enumerate(results):
        if caller % 5 == 4:
            assert isinstance(result, GraphRejected), (caller, result)
            assert "x must be >= 0" in str(result)
        else:
            assert isinstance(result, dict), (caller, result)
            np.testing.assert_allclose(result["y"][:, 0], _rows(caller).sum(axis=1), rtol=1e-6)


def _merged_calls(metrics_text: str, model: str) -> tuple[float, float]:
    """(calls, rows) of tierkit_graph_batch_rows for ``model``."""
    def sample(name: str) -> float:
        found = re.search(rf'^{name}{{model="{model}"}} (\S+)$', metrics_text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    return sample("tierkit_graph_batch_rows_count"), sample("tierkit_graph_batch_rows_sum")


def test_a_burst_through_the_logic_tier_is_merged_and_answered_per_record(
    logic: LogicTier,
) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=logic.url, timeout=30) as http:
            calls = [
                http.post(f"/v1/models/{TENSOR_MODEL}/predict", json={"x": _rows(c)[0].tolist()})
                for c in range(64)
            ]
            return await asyncio.gather(*calls)

    before = _merged_calls(httpx.get(f"{logic.url}/metrics").text, TENSOR_MODEL)
    answers = asyncio.run(burst())
    after = _merged_calls(httpx.get(f"{logic.url}/metrics").text, TENSOR_MODEL)
    for caller, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"]["y"] == pytest.approx(float(_rows(caller).sum()))
    calls, rows = after[0] - before[0], after[1] - before[1]
    assert calls >= 1 and rows > calls, (calls, rows)  # at least one call carried several
