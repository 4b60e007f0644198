"""A starting logic tier accepts connections only once it can answer them.

Behind a load balancer (nginx in the compose stack) a replica that listens
before its versions' feature artifacts are loaded holds every request sent to
it until the load ends: a restarted replica held them 1.6 s. One that does not
listen yet refuses the connection, and the balancer moves on at once. So the
first connection the port ever accepts must find the tier ready.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
from support.graph_tier import GraphTier
from support.ports import free_port
from support.processes import Process

from logic_service.features.ctr import EXAMPLE_REQUEST

from .stack import MODEL

START_LIMIT_S = 90


def _first_accepted_connection(port: int, process: Process) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        assert process.alive(), f"logic_service died:\n{process.tail()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"nothing listened on {port} within {START_LIMIT_S} s")


def test_the_first_accepted_connection_finds_the_tier_ready(
    graph: GraphTier, stack_dir: Path
) -> None:
    port = free_port()
    config = stack_dir / "logic-startup.yaml"
    config.write_text(
        f"port: {port}\n"
        f"model_repository: {graph.repo}\n"
        f"models: [{{name: {MODEL}}}]\n"
        "graph:\n"
        f"  grpc_address: 127.0.0.1:{graph.grpc_port}\n"
        f"log:\n  dir: {stack_dir / 'logs-startup'}\n"
        f"storage:\n  database_url: sqlite:///{stack_dir / 'tierkit-startup.db'}\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        stack_dir / "logic-startup.out",
    )
    process.start()
    try:
        _first_accepted_connection(port, process)
        url = f"http://127.0.0.1:{port}"
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        answer = httpx.post(f"{url}/v1/models/{MODEL}/predict", json=EXAMPLE_REQUEST, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        process.stop()
