"""Prometheus metrics of the logic tier.

With several uvicorn workers each process counts its own requests, so a scrape
of any one worker would see a fraction. prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by ``python -m logic_service serve`` before
the workers start, emptied at each start) makes every worker write its values
to files there, and ``/metrics`` sums them. With one process, a private
registry per app keeps apps built in one test process apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latency spans sub-millisecond answers to deadline-bound ones.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
STAGE_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(path: Path) -> None:
    """Empty the directory before workers start: stale files would add old counts."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


class Metrics:
    def __init__(self) -> None:
        self._multiprocess = multiprocess_dir() is not None
        # In multiprocess mode values live in files; registering in a registry is not needed.
        self.registry = None if self._multiprocess else CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "status")
        # arm: the rollout's name for the route (baseline, candidate, stable, a split's key...)
        self.requests = Counter(
            "tierkit_requests",
            "Predict requests answered, by model, version, rollout arm and HTTP status.",
            ("model", "version", "arm", "status"),
            registry=self.registry,
        )
        # api: the request API of the path (v1, v2...), so an old API's traffic is seen to end
        self.api_requests = Counter(
            "tierkit_api_requests",
            "Predict requests answered, by model, request API version, version and HTTP status.",
            ("model", "api", "version", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "tierkit_request_latency_seconds",
            "Predict request latency, end to end inside the logic tier.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graph_call = Histogram(
            "tierkit_graph_call_seconds",
            "Time of one graph-tier predict call.",
            ("model", "version", "protocol"),
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.graph_batch_rows = Histogram(
            "tierkit_graph_batch_rows",
            "Rows per graph-tier predict call made of merged requests (graph.batching).",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.features = Histogram(
            "tierkit_feature_seconds",
            "Feature processing (function and transformer) per request.",
            ("model", "version"),
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.validation = Histogram(
            "tierkit_validation_seconds",
            "Input schema validation per request.",
            ("model", "version"),
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        # an output JSON cannot carry (NaN, inf): the request answered 422 non_finite_output
        self.non_finite_outputs = Counter(
            "tierkit_non_finite_outputs",
            "Records whose model output was NaN or infinite (answered 422 non_finite_output), "
            "by model, version and output.",
            ("model", "version", "output"),
            registry=self.registry,
        )

        self.prediction_log_dropped = Counter(
            "tierkit_prediction_log_dropped",
            "Prediction log rows not written: spill_full (the spill folder at its cap), "
            "duplicate, invalid, rejected (by the database as data); queue_full and "
            "write_failed only with the spill folder turned off.",
            ("reason",),
            registry=self.registry,
        )
        self.prediction_log_written = Counter(
            "tierkit_prediction_log_written",
            "Prediction log rows written to the database.",
            registry=self.registry,
        )
        # the writer never drops for a slow or absent database: it spills (issue 28)
        self.prediction_log_spilled = Counter(
            "tierkit_prediction_log_spilled",
            "Prediction log rows the database could not take in time, written to the spill file.",
            registry=self.registry,
        )
        self.prediction_log_replayed = Counter(
            "tierkit_prediction_log_replayed",
            "Spilled prediction log rows written back to the database.",
            registry=self.registry,
        )
        self.prediction_log_spill_bytes = Gauge(
            "tierkit_prediction_log_spill_bytes",
            "Bytes waiting in the spill folder (shared by a host's workers: the largest count).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.prediction_log_database_up = Gauge(
            "tierkit_prediction_log_database_up",
            "1 while the prediction log writer's inserts succeed, 0 while it spills instead.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.prediction_log_database_up.set(1)
        self.prediction_log_queue = Gauge(
            "tierkit_prediction_log_queue_depth",
            "Records waiting for the prediction log writer (sampled at each flush).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

        # rollouts (issue #5): the candidate's share now, and what shadow traffic found
        self.rollout_share = Gauge(
            "tierkit_rollout_candidate_share",
            "Percent of traffic the rollout's candidate (canary) or active version gets.",
            ("model", "strategy"),
            registry=self.registry,
            # set at each scrape from the shared rollout state: the latest write is the truth
            multiprocess_mode="mostrecent",
        )
        self.rollout_stage = Gauge(
            "tierkit_rollout_stage",
            "Canary stage index (0 = first stage; -1 rolled back), 0 for other strategies.",
            ("model", "strategy"),
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.rollout_missing = Gauge(
            "tierkit_rollout_missing_versions",
            "Versions the model's rollout names that cannot serve (folder gone, load failed); "
            "traffic follows the fallback rule meanwhile (docs/rollouts.md).",
            ("model",),
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.versions_refused = Gauge(
            "tierkit_versions_refused",
            "Versions the graph tier has or the repository holds whose artifacts the logic "
            "tier refused (feature code, transformer, example); the last servable version "
            "keeps serving meanwhile (docs/your-model.md).",
            ("model",),
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.shadow_requests = Counter(
            "tierkit_shadow_requests",
            "Shadow comparisons: agree, disagree (threshold side), failed, skipped (bound).",
            ("model", "primary", "shadow", "outcome"),
            registry=self.registry,
        )
        self.shadow_score_diff = Histogram(
            "tierkit_shadow_score_diff",
            "Shadow score minus primary score, per record.",
            ("model", "primary", "shadow"),
            buckets=(-0.5, -0.2, -0.1, -0.05, -0.01, 0.0, 0.01, 0.05, 0.1, 0.2, 0.5),
            registry=self.registry,
        )
        self.shadow_latency = Histogram(
            "tierkit_shadow_latency_seconds",
            "Latency of the primary and the shadow call of shadowed requests.",
            ("model", "version", "role"),
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        if self._multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
