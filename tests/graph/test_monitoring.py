"""Prometheus metrics on the REST port (``--monitoring_config_file``) and the config parser."""

from __future__ import annotations

import re

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from graph_service.monitoring import (
    DEFAULT_PROMETHEUS_PATH,
    Metrics,
    MonitoringConfigError,
    load_monitoring_config,
)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels...}`` (labels matched as a subset)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{") : line.rindex("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_by_model_version_api_and_status(graph_server):
    with grpc.insecure_channel(graph_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.version.value = 1
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
        for _ in range(3):
            stub.Predict(request, timeout=10)
        missing = predict_pb2.PredictRequest()
        missing.model_spec.name = "metrics_missing_model"
        with pytest.raises(grpc.RpcError):
            stub.Predict(missing, timeout=10)

    response = httpx.get(graph_server.rest_url + graph_server.metrics_path, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(r"^# TYPE tfserving_request_count(_total)? counter$", text, re.M)
    assert "# TYPE tfserving_request_latency_seconds histogram" in text
    ok = sample(
        text,
        "tfserving_request_count_total",
        model_name="half_plus_two",
        version="1",
        api="Predict",
        status="OK",
    )
    assert ok is not None and ok >= 3
    assert (
        sample(
            text,
            "tfserving_request_count_total",
            model_name="metrics_missing_model",
            api="Predict",
            status="NOT_FOUND",
        )
        == 1.0
    )
    assert (
        sample(
            text,
            "tfserving_request_latency_seconds_count",
            model_name="half_plus_two",
            version="1",
            api="Predict",
        )
        >= 3
    )
    # the TensorFlow run alone, apart from protocol and queueing
    assert "# TYPE tfserving_runtime_latency_seconds histogram" in text
    runs = sample(
        text,
        "tfserving_runtime_latency_seconds_count",
        model_name="half_plus_two",
        version="1",
        signature_name="serving_default",
    )
    assert runs is not None and runs >= 3


def test_metrics_report_load_events(graph_server):
    text = httpx.get(graph_server.rest_url + graph_server.metrics_path, timeout=10).text
    assert sample(text, "tfserving_model_load_total", model_name="half_plus_two", status="OK") == 2
    # A truncated saved_model.pb: TF's C++ loader answers OUT_OF_RANGE.
    failed = sample(text, "tfserving_model_load_total", model_name="broken", status="OUT_OF_RANGE")
    assert failed == 1
    assert sample(text, "tfserving_model_versions_available", model_name="broken") == 1
    assert sample(text, "tfserving_model_load_latency_seconds_count", model_name="tf2_multi") == 1


def test_monitoring_config_parsing(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true path: "/metrics/x" }')
    settings = load_monitoring_config(path)
    assert (settings.enabled, settings.path) == (True, "/metrics/x")
    path.write_text("prometheus_config { enable: true }")
    assert load_monitoring_config(path).path == DEFAULT_PROMETHEUS_PATH
    path.write_text("prometheus_config { enabled: true }")
    with pytest.raises(MonitoringConfigError) as info:
        load_monitoring_config(path)
    assert "enabled" in str(info.value)


def test_each_metrics_object_has_its_own_registry():
    first, second = Metrics(), Metrics()
    first.observe_request("Predict", "m", 1, "OK", 0.01)
    assert b'model_name="m"' in first.render()[0]
    assert b'model_name="m"' not in second.render()[0]


def test_batch_queue_depth_is_read_from_the_batcher_at_each_scrape():
    metrics = Metrics()
    text = metrics.render()[0].decode()
    assert "# TYPE tfserving_batch_queue_depth gauge" in text  # there before any batcher
    assert sample(text, "tfserving_batch_queue_depth") is None
    depths = [("m", 3, "serving_default", 5)]
    metrics.watch_queue_depths(lambda: depths)
    text = metrics.render()[0].decode()
    labels = {"model_name": "m", "version": "3", "signature_name": "serving_default"}
    assert sample(text, "tfserving_batch_queue_depth", **labels) == 5
    depths[:] = [("m", 3, "serving_default", 0)]
    assert sample(metrics.render()[0].decode(), "tfserving_batch_queue_depth", **labels) == 0
