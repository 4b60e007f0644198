"""``--monitoring_config_file`` and the Prometheus metrics served on the REST port.

``MonitoringConfig`` is not shipped as a Python proto in tensorflow-serving-api,
so the two messages are declared here at runtime with TF Serving's package and
field numbers (tensorflow_serving/config/monitoring_config.proto) and the file
is parsed as text format exactly like the C++ server does.

TF Serving's metric names (``:tensorflow:serving:request_count``) are not valid
Prometheus names once scraped outside its own exporter, so tierkit exports:

- ``tfserving_request_count_total{model_name,version,api,status}``
  (TF Serving: ``:tensorflow:serving:request_count``)
- ``tfserving_request_latency_seconds{model_name,version,api}``, histogram
  (``:tensorflow:serving:request_latency``, which is in microseconds)
- ``tfserving_model_load_total{model_name,status}``
  (``:tensorflow:cc:saved_model:load_attempt_count``)
- ``tfserving_model_load_latency_seconds{model_name}``, histogram, load + warmup
  (``:tensorflow:cc:saved_model:load_latency``)
- ``tfserving_model_unload_total{model_name}`` and
  ``tfserving_model_versions_available{model_name}`` (no TF Serving counterpart)
- ``tfserving_batch_queue_depth{model_name,version,signature_name}``, gauge, and
  ``tfserving_batch_size{model_name,signature_name}``, histogram
  (``:tensorflow:serving:batching_session:*``)

``api`` is the RPC name (Predict, Classify, Regress, MultiInference,
GetModelMetadata, GetModelStatus); ``status`` the gRPC code name (OK,
NOT_FOUND, ...). Each server owns its registry (no global state).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

QueueDepth = tuple[str, int, str, int]  # model, version, signature, tasks waiting


class _QueueDepthCollector:
    """``tfserving_batch_queue_depth``, read from the batcher when scraped."""

    _NAME = "tfserving_batch_queue_depth"
    _HELP = "Tasks waiting in a batching queue."
    _LABELS = ("model_name", "version", "signature_name")

    def __init__(self) -> None:
        self.depths: Callable[[], Iterable[QueueDepth]] = tuple  # none until a batcher

    def describe(self):
        yield GaugeMetricFamily(self._NAME, self._HELP, labels=self._LABELS)

    def collect(self):
        family = GaugeMetricFamily(self._NAME, self._HELP, labels=self._LABELS)
        for model, version, signature, depth in self.depths():
            family.add_metric([model, str(version), signature], depth)
        yield family


def _monitoring_config_class():
    """Declare tensorflow.serving.MonitoringConfig in a private descriptor pool."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(
        name="enable",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    prometheus.field.add(
        name="path",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    )


MonitoringConfig = _monitoring_config_class()


class MonitoringConfigError(Exception):
    """The monitoring config file cannot be read or parsed."""


@dataclass(frozen=True)
class PrometheusSettings:
    enabled: bool
    path: str


def load_monitoring_config(path: str | os.PathLike[str]) -> PrometheusSettings:
    """Parse a text MonitoringConfig; the error names the file and the parse problem."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise MonitoringConfigError(
            f"Cannot read monitoring config file '{path}': {exc.strerror}"
        ) from None
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        # protobuf's own wording (what TF Serving prints), then TF Serving's.
        raise MonitoringConfigError(
            f"Invalid protobuf file: '{path}': Error parsing text-format "
            f"{config.DESCRIPTOR.full_name}: {exc}"
        ) from None
    prometheus = config.prometheus_config
    route = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not route.startswith("/"):
        raise MonitoringConfigError(
            f"Invalid monitoring config '{path}': prometheus_config.path must start with '/'"
        )
    return PrometheusSettings(enabled=prometheus.enable, path=route)


_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        # Both children of one request label set in one lookup (observe_request).
        self._request_children: dict[tuple, tuple[Any, Any]] = {}
        r = self.registry
        self.request_count = Counter(
            "tfserving_request_count",
            "Requests answered, by model, version, API and gRPC status code.",
            ["model_name", "version", "api", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "tfserving_request_latency_seconds",
            "Time to answer a request inside the server, by model, version and API.",
            ["model_name", "version", "api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.runtime_latency = Histogram(
            "tfserving_runtime_latency_seconds",
            "Time of the TensorFlow session run alone (one call; a whole batch when batching).",
            ["model_name", "version", "signature_name"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_load = Counter(
            "tfserving_model_load",
            "Version loads by outcome (status OK or the error code).",
            ["model_name", "status"],
            registry=r,
        )
        self.model_load_latency = Histogram(
            "tfserving_model_load_latency_seconds",
            "Time to load and warm up a version.",
            ["model_name"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.model_unload = Counter(
            "tfserving_model_unload", "Versions unloaded.", ["model_name"], registry=r
        )
        self.versions_available = Gauge(
            "tfserving_model_versions_available",
            "Versions currently AVAILABLE per model.",
            ["model_name"],
            registry=r,
        )
        self._queue_depths = _QueueDepthCollector()
        r.register(self._queue_depths)
        self.batch_size = Histogram(
            "tfserving_batch_size",
            "Rows per batched graph call.",
            ["model_name", "signature_name"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )

    def _child(self, metric, *values: str):
        """``metric.labels(*values)``, looked up in a plain dict after the first time.

        ``labels()`` validates, locks and builds its key on every call; on the
        serving path (three or four observations per request) that was a few
        percent of a request's CPU. Children are never removed here, so a cached
        one stays the registry's.
        """
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_request(
        self, api: str, model_name: str, version: int | None, status: str, seconds: float
    ) -> None:
        key = (api, model_name, version, status)
        children = self._request_children.get(key)
        if children is None:
            v = "" if version is None else str(version)
            children = self._request_children[key] = (
                self._child(self.request_count, model_name, v, api, status),
                self._child(self.request_latency, model_name, v, api),
            )
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def observe_runtime(
        self, model_name: str, version: int, signature: str, seconds: float
    ) -> None:
        self._child(self.runtime_latency, model_name, str(version), signature).observe(seconds)

    def observe_load(self, model_name: str, status: str, seconds: float) -> None:
        self.model_load.labels(model_name, status).inc()
        self.model_load_latency.labels(model_name).observe(seconds)

    def observe_unload(self, model_name: str) -> None:
        self.model_unload.labels(model_name).inc()

    def set_available(self, model_name: str, count: int) -> None:
        self.versions_available.labels(model_name).set(count)

    def watch_queue_depths(self, depths: Callable[[], Iterable[QueueDepth]]) -> None:
        """Report ``depths()`` -- (model, version, signature, tasks waiting) per
        batching queue -- as ``tfserving_batch_queue_depth`` at every scrape."""
        self._queue_depths.depths = depths

    def observe_batch(self, model_name: str, signature: str, rows: int) -> None:
        """Hook for the batcher: rows in one merged graph call."""
        self._child(self.batch_size, model_name, signature).observe(rows)

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
