"""The graph tier's own counters on the dashboard's feed, from a real HTTP exporter.

``graph_service_metrics.txt`` is what graph_service served (``--monitoring_config_file``
with deploy/tfserving/monitoring.config, three predicts of half_plus_two); the TF
Serving sample is written here in its exporter's format (names with colons, run time
in microseconds), since no TF Serving binary runs in these tests.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.dashboard.graph_metrics import parse_graph_metrics
from logic_service.settings import LogicSettings

GRAPH_SERVICE_TEXT = (
    Path(__file__).resolve().parents[2] / "support" / "data" / "graph_service_metrics.txt"
).read_text()
TF_SERVING_TEXT = """\
# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="ctr",status="OK"} 120
:tensorflow:serving:request_count{model_name="ctr",status="INVALID_ARGUMENT"} 3
# TYPE :tensorflow:serving:runtime_latency histogram
:tensorflow:serving:runtime_latency_bucket{model_name="ctr",API="predict",le="1e4"} 120
:tensorflow:serving:runtime_latency_bucket{model_name="ctr",API="predict",le="+Inf"} 120
:tensorflow:serving:runtime_latency_sum{model_name="ctr",API="predict"} 240000
:tensorflow:serving:runtime_latency_count{model_name="ctr",API="predict"} 120
"""


def test_graph_service_counters_leave_out_the_logic_tiers_status_polls() -> None:
    # the file also holds one GetModelStatus call: not the model's traffic
    assert "GetModelStatus" in GRAPH_SERVICE_TEXT
    (hpt,) = parse_graph_metrics(GRAPH_SERVICE_TEXT).values()
    assert (hpt["requests"], hpt["errors"], hpt["runs"]) == (3, 0, 3)
    assert 0 < hpt["run_seconds"] < 1


def test_tf_servings_names_and_microseconds_are_read() -> None:
    ctr = parse_graph_metrics(TF_SERVING_TEXT)["ctr"]
    assert (ctr["requests"], ctr["errors"], ctr["runs"]) == (123, 3, 120)
    assert ctr["run_seconds"] == pytest.approx(0.24)  # 240,000 us


class _Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/monitoring/prometheus/metrics":
            self.send_error(404)
            return
        body = GRAPH_SERVICE_TEXT.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def exporter_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _feed(tmp_path: Path, rest_url: str, **graph) -> dict:
    settings = LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{free_port()}", "rest_url": rest_url} | graph,
        model_repository=tmp_path / "models",
        storage={"database_url": f"sqlite:///{tmp_path / 'log.db'}"},
    )
    with TestClient(create_app(settings, configure_logs=False)) as client:
        return client.get("/dashboard/api/summary").json()["graph_metrics"]


def test_the_feed_carries_the_graph_tiers_counters(tmp_path: Path, exporter_url: str) -> None:
    metrics = _feed(tmp_path, exporter_url)
    assert metrics["models"]["hpt"]["requests"] == 3


def test_the_feed_says_why_it_has_none(tmp_path: Path, exporter_url: str) -> None:
    missing = _feed(tmp_path / "a", exporter_url, metrics_path="/elsewhere")
    assert "--monitoring_config_file" in missing["error"]
    down = _feed(tmp_path / "b", f"http://127.0.0.1:{free_port()}")
    assert down["error"].startswith("graph tier metrics unavailable: ConnectError")
    off = _feed(tmp_path / "c", exporter_url, metrics_path="")
    assert "unset" in off["error"]
