"""The graph tier's own Prometheus counters, per model, for the dashboard's "Graph tier" card.

The graph tier serves them on its REST port when started with
``--monitoring_config_file`` (TF Serving and graph_service alike; ``./scripts/up``
and compose do). Both exporters are read: TF Serving's
``:tensorflow:serving:request_count{model_name,status}`` and
``:tensorflow:serving:runtime_latency`` (microseconds), graph_service's
``tfserving_request_count_total{model_name,status}`` and
``tfserving_runtime_latency_seconds``; status and metadata calls (the logic
tier's own polling) are not counted. The answer is cumulative since the graph
tier started; the page turns two polls into rates, so nothing is kept here.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from logic_service.settings import LogicSettings

TIMEOUT_S = 0.5  # the feed is polled every 2 s: a slow exporter must not hold it
REQUESTS = {":tensorflow:serving:request_count", "tfserving_request_count"}
# the logic tier asks for status every second: those calls are not the model's traffic
NOT_TRAFFIC = {"GetModelStatus", "GetModelMetadata", "ReloadConfig"}
# run time inside TensorFlow: (family, seconds per unit of its _sum)
RUNTIME = {":tensorflow:serving:runtime_latency": 1e-6, "tfserving_runtime_latency_seconds": 1.0}


def graph_tier_metrics(settings: LogicSettings) -> dict[str, Any]:
    """Per model: requests, errors (status not OK), TensorFlow run seconds and runs."""
    path = settings.graph.metrics_path
    if not path:
        return {"error": "graph.metrics_path is unset: the graph tier's metrics are not read"}
    url = settings.graph.rest_url.rstrip("/") + path
    response = httpx.get(url, timeout=TIMEOUT_S)
    if response.status_code == 404:
        return {
            "error": f"the graph tier serves no metrics at {path}: start it with "
            "--monitoring_config_file (./scripts/up does unless --no-graph-metrics)"
        }
    response.raise_for_status()
    return {"models": parse_graph_metrics(response.text)}


def parse_graph_metrics(text: str) -> dict[str, dict[str, float]]:
    """The Prometheus text of either exporter -> per model counters (see module docstring)."""
    models: dict[str, dict[str, float]] = {}

    def of(labels: dict[str, str]) -> dict[str, float]:
        name = labels.get("model_name", "")
        return models.setdefault(
            name, {"requests": 0.0, "errors": 0.0, "run_seconds": 0.0, "runs": 0.0}
        )

    for family in text_string_to_metric_families(text):
        if family.name in REQUESTS:
            for sample in family.samples:
                if sample.name.endswith("_created") or sample.labels.get("api") in NOT_TRAFFIC:
                    continue
                counts = of(sample.labels)
                counts["requests"] += sample.value
                if sample.labels.get("status", "OK") != "OK":
                    counts["errors"] += sample.value
        elif family.name in RUNTIME:
            unit = RUNTIME[family.name]
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    of(sample.labels)["run_seconds"] += sample.value * unit
                elif sample.name.endswith("_count"):
                    of(sample.labels)["runs"] += sample.value
    models.pop("", None)
    return models
