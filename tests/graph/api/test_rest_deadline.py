"""``--rest_api_timeout_in_ms``: a REST call that outlives it answers DEADLINE_EXCEEDED (504).

A private server (over the read-only zoo) with a 1 ms deadline: a request whose body
alone takes longer than that to decode is past its deadline when it reaches the graph.
"""

from __future__ import annotations

import json

import httpx
import pytest
from support.graph_tier import start_graph_server

CONFIG = """
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{base}" model_platform: "tensorflow" }}
}}
"""


@pytest.fixture(scope="module")
def impatient_server(model_zoo, tmp_path_factory):
    server = start_graph_server(
        tmp_path_factory.mktemp("rest_deadline"),
        model_zoo.repo,
        CONFIG.format(base=model_zoo.repo / "half_plus_two"),
        "--rest_api_timeout_in_ms=1",
        wait_models=["half_plus_two"],
    )
    yield server
    server.stop()


def test_slow_request_answers_deadline_exceeded(impatient_server):
    body = json.dumps({"instances": [[float(i)] for i in range(200_000)]})
    with httpx.Client(base_url=impatient_server.rest_url, timeout=60) as client:
        response = client.post("/v1/models/half_plus_two:predict", content=body)
        assert response.status_code == 504, response.text[:300]
        assert response.headers["content-type"] == "application/json"
        assert "Deadline Exceeded" in response.json()["error"]
        # The server keeps serving; calls that never wait on the graph are unaffected.
        status = client.get("/v1/models/half_plus_two")
        assert status.status_code == 200
        assert status.json()["model_version_status"][0]["state"] == "AVAILABLE"
