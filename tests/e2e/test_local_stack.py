"""``scripts/local_stack.py`` (what ./scripts/up runs): start, banner, demo curl, clean stop."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import httpx

from logic_service.features import ctr

from .conftest import GraphTier
from .local_stack_run import BANNER_END, start_local_stack


def test_up_serves_the_printed_curl_and_stops_on_ctrl_c(graph: GraphTier, stack_dir: Path) -> None:
    up = start_local_stack(graph, stack_dir, "up")
    try:
        text = up.wait_for_banner(150)
        assert f"http://127.0.0.1:{up.port}/docs" in text
        assert f"gRPC 127.0.0.1:{up.graph_port}" in text
        curl = text[text.index("curl -s") : text.index(BANNER_END)].replace("\\\n", " ")
        words = shlex.split(curl)
        url, body = words[words.index("-X") + 2], json.loads(words[words.index("-d") + 1])
        assert body == ctr.EXAMPLE_REQUEST
        response = httpx.post(url, json=body, timeout=10)
        assert response.status_code == 200, response.text
        assert 0.0 < response.json()["prediction"]["score"] < 1.0
        assert (up.log_dir / "logic.log").is_file() and (up.log_dir / "graph.log").is_file()
    finally:
        code, _ = up.interrupt(timeout=60)
    assert code == 0, up.text()
    assert "[up] stopped" in up.text()
    for port in (up.port, up.graph_port, up.graph_rest_port):  # both tiers are gone
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"port {port} still answers after the stack stopped")
