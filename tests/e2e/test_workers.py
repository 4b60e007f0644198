"""Several uvicorn workers: requests spread over processes, /metrics sums them all."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.graph_tier import GraphTier
from support.waiting import wait_until

from logic_service.features import ctr

from .stack import MODEL, LogicTier, start_logic


@pytest.fixture(scope="module")
def two_workers(graph: GraphTier, stack_dir: Path) -> Iterator[LogicTier]:
    tier = start_logic(graph, stack_dir, "grpc", workers=2)
    yield tier
    tier.process.stop()


def _count(metrics: str) -> float:
    pattern = (
        rf'^tierkit_requests_total\{{arm="[^"]*",model="{MODEL}",status="200",version="\d+"\}} '
        r"(\S+)$"
    )
    return sum(float(v) for v in re.findall(pattern, metrics, flags=re.M))


def test_metrics_are_summed_across_workers(two_workers: LogicTier) -> None:
    url = two_workers.url
    # Both workers load their artifacts on their own; wait until every probe says ready.
    wait_until(lambda: all(two_workers.ready() for _ in range(10)), 90, "both workers ready")
    before = _count(httpx.get(f"{url}/metrics").text)
    for _ in range(40):  # a new connection each time, so the kernel spreads them
        response = httpx.post(f"{url}/v1/models/{MODEL}/predict", json=ctr.EXAMPLE_REQUEST)
        assert response.status_code == 200, response.text
    files = list((two_workers.log_dir / f"prometheus-{url.rsplit(':', 1)[1]}").glob("counter_*"))
    assert len(files) == 2, files  # one per worker process
    for _ in range(5):  # whichever worker answers the scrape sees the same total
        assert _count(httpx.get(f"{url}/metrics").text) - before == 40
