"""What the dashboard shows (``/dashboard/api/summary``), and the rollout gauges of ``/metrics``.

The numbers come from the prediction log in the shared database, not from
this process's memory: with several uvicorn workers any one of them may
answer the page's poll, and each must show the same view. Each section of the
feed is built on its own and a failure becomes ``{"error": ...}`` for that
panel only, so a missing or broken part (no rollout store, a database hiccup)
greys out one panel instead of blanking the page.

The routes (the page, this feed, its static files) are ``api/dashboard.py``'s.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from logic_service.dashboard.api_panel import api_panel
from logic_service.dashboard.graph_metrics import graph_tier_metrics
from logic_service.pinning.missing import rollout_warnings
from logic_service.routing import canary
from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.routing.shadow import ShadowRunner
from logic_service.services import Services
from logic_service.storage.aggregate_reads import request_series
from logic_service.storage.evaluation import version_stats
from logic_service.storage.log_aggregates import FINE_S

log = logging.getLogger(__name__)

LIVE_WINDOW_S = 60  # requests/s, percentiles and error rate: the last minute
HISTORY_S = 300  # the traffic chart: five minutes by default...
HISTORY_STEPS = 30  # ...in thirty steps (ten seconds each; never under the 10 s aggregates)
EVALUATION_WINDOW = timedelta(hours=1)  # feedback arrives late; a minute would show nothing
MAX_EVENTS = 20


def _section(what: str, build: Callable[[], Any]) -> Any:
    """One panel's data, or the reason it has none (logged once per poll, never raised)."""
    try:
        return build()
    except Exception as exc:  # a panel must not take the page down
        log.warning("dashboard: %s unavailable: %s", what, exc)
        return {"error": f"{what} unavailable: {type(exc).__name__}: {exc}"}


def live_stats(engine: Engine, model: str, now: datetime, window_s: int) -> list[dict]:
    """Requests/s, error rate and latency percentiles per version over the last ``window_s``."""
    stats = version_stats(engine, model, now - timedelta(seconds=window_s), now)
    return [
        {
            "version": s.version,
            "requests": s.requests,
            "rps": s.requests / window_s,
            "errors": s.errors,
            "error_rate": s.error_rate,
            "p50_ms": s.p50_ms,
            "p95_ms": s.p95_ms,
            "p99_ms": s.p99_ms,
        }
        for s in stats
    ]


def traffic_history(
    engine: Engine, model: str, now: datetime, history_s: int, bucket_s: int
) -> dict[str, Any]:
    """Requests per version per time bucket: the split over time, as the log saw it.

    Summed from the log's 10-second aggregates (``aggregate_reads``), so a chart
    bucket is a multiple of 10 s; a batch of 50 records counts as one request,
    as in the live numbers.
    """
    bucket_s = max(FINE_S, bucket_s - bucket_s % FINE_S)
    buckets = max(1, history_s // bucket_s)
    end = math.ceil(now.timestamp() / FINE_S) * FINE_S  # the current 10 s bucket is the last
    start = end - buckets * bucket_s
    since = datetime.fromtimestamp(start, UTC)
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * buckets)
    errors: dict[int, list[int]] = defaultdict(lambda: [0] * buckets)
    for at, version, requests, failed in request_series(engine, model, since, now):
        index = (at - start) // bucket_s
        if 0 <= index < buckets:
            counts[version][index] += requests
            errors[version][index] += failed
    return {
        "bucket_s": bucket_s,
        "starts": [float(start + i * bucket_s) for i in range(buckets)],
        "versions": {str(v): counts[v] for v in sorted(counts)},
        "errors": {str(v): errors[v] for v in sorted(counts)},
    }


def evaluation(engine: Engine, model: str, now: datetime) -> dict[str, Any]:
    stats = version_stats(engine, model, now - EVALUATION_WINDOW, now)
    return {"window": "1h", "versions": [asdict(s) for s in stats]}


def rollout_view(policy: Any, model: str) -> dict[str, Any]:
    """Strategy, canary stage and share, and the recent transitions (read-only)."""
    record = policy.get(model)
    spec = record.spec
    view: dict[str, Any] = {
        "strategy": spec.strategy,
        "revision": record.revision,
        "updated_at": record.updated_at,
        "spec": spec.model_dump(mode="json", exclude={"models_config"}),
        "events": policy.store.events(model, limit=MAX_EVENTS) if record.revision else [],
    }
    if spec.strategy == "canary":
        state = canary.CanaryState.from_json(record.state.get("canary"), time.time())
        view["canary"] = {
            "stage": state.stage,
            "stages": list(spec.stages),
            "status": state.status,
            "reason": state.reason,
            "stage_started": state.stage_started,
            "share": canary.candidate_share(spec, state),
        }
    return view


def _model_view(
    name: str,
    graph: dict,
    engine: Engine,
    policy: RolloutPolicy,
    shadow: ShadowRunner,
    now: datetime,
    history_s: int,
) -> dict[str, Any]:
    def from_log(what: str, build: Callable[[Engine], Any]) -> Any:
        return _section(what, lambda: build(engine))

    return {
        "name": name,
        "ready_versions": graph.get("ready_versions", []),
        "graph": graph.get("graph", {}),
        "labels": graph.get("labels", {}),
        "loading": graph.get("loading", []),
        "failed": graph.get("failed", {}),
        "quantized": graph.get("quantized", {}),
        "live": from_log("live stats", lambda e: live_stats(e, name, now, LIVE_WINDOW_S)),
        "history": from_log(
            "traffic history",
            lambda e: traffic_history(e, name, now, history_s, max(1, history_s // HISTORY_STEPS)),
        ),
        "evaluation": from_log("online evaluation", lambda e: evaluation(e, name, now)),
        "rollout": _section("rollout", lambda: rollout_view(policy, name)),
        "shadow": _section("shadow comparisons", lambda: shadow.summary(name)),
    }


def build_summary(services: Services, history_s: int = HISTORY_S) -> dict[str, Any]:
    """The whole feed; runs in a worker thread (database reads)."""
    now = datetime.now(UTC)
    settings, registry, engine = services.settings, services.registry, services.database
    policy = services.rollouts
    # this worker's queued rows first, so the page shows requests just answered
    _section("prediction log flush", lambda: services.prediction_log.flush(1.0))
    token = settings.admin_token
    described = registry.describe()
    problems = registry.readiness()
    models = [
        _model_view(name, described.get(name, {}), engine, policy, services.shadow, now, history_s)
        for name in registry.model_names()
    ]
    for view in models:  # versions the rollout names that cannot serve now (pinning/missing.py)
        rollout = view.get("rollout")
        if isinstance(rollout, dict) and "error" not in rollout:
            rollout["warnings"] = _section(
                "rollout warnings",
                lambda n=view["name"]: rollout_warnings(registry, policy, n, settings),
            )
    for view in models:  # request APIs and pinned traffic (issue #24)
        view["apis"] = _section(
            "API versions",
            lambda n=view["name"]: api_panel(services.apis, engine, n, now, LIVE_WINDOW_S),
        )
    return {
        "generated_at": now.timestamp(),
        "live_window_s": LIVE_WINDOW_S,
        "ready": not problems,
        "problems": problems,
        "admin_enabled": bool(token is not None and token.get_secret_value()),
        "models": models,
        # the graph tier's own counters (issue 28); the page turns two polls into rates
        "graph_metrics": _section("graph tier metrics", lambda: graph_tier_metrics(settings)),
    }


def record_rollout_gauges(services: Services) -> None:
    """Set ``tierkit_rollout_stage`` and ``..._candidate_share`` from the shared rollout state.

    Called at each scrape rather than on each transition: the evaluator that
    promotes may be another worker (or replica), and the database is the one
    place that knows; gauges are "most recent" across workers.
    """
    policy, metrics, registry = services.rollouts, services.metrics, services.registry
    for name in registry.model_names():
        view = _section("rollout gauges", lambda n=name: rollout_view(policy, n))
        if "error" in view:
            continue
        strategy = view["strategy"]
        stage, share = 0.0, None
        if "canary" in view:
            canary_view = view["canary"]
            stage = -1.0 if canary_view["status"] == "rolled_back" else canary_view["stage"]
            share = canary_view["share"]
        elif strategy == "blue_green":
            share = 100.0
        metrics.rollout_stage.labels(name, strategy).set(stage)
        # versions the rollout names that cannot serve (lasting)
        warnings = _section(
            "rollout warnings",
            lambda n=name: rollout_warnings(registry, policy, n, services.settings),
        )
        lasting = [w for w in warnings if w["lasting"]] if isinstance(warnings, list) else []
        metrics.rollout_missing.labels(name).set(len(lasting))
        if share is not None:
            metrics.rollout_share.labels(name, strategy).set(share)
