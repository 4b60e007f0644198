"""``/dashboard``: the page operators look at to decide a rollout, and its JSON feed.

The numbers come from the prediction log in the shared database, not from
this process's memory: with several uvicorn workers any one of them may
answer the page's poll, and each must show the same view. Each section of the
feed is built on its own and a failure becomes ``{"error": ...}`` for that
panel only, so a missing or broken part (no rollout store, a database hiccup)
greys out one panel instead of blanking the page.

Every asset (HTML, JS, CSS) is served from ``logic_service/static``: the page
works on a machine with no internet.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from logic_service import canary
from logic_service.api_errors import ApiError
from logic_service.api_traffic import api_panel
from logic_service.evaluation import version_stats
from logic_service.pinning.missing import rollout_warnings
from logic_service.prediction_log import predictions, utc

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
LIVE_WINDOW_S = 60  # requests/s, percentiles and error rate: the last minute
HISTORY_S = 300  # the traffic chart: five minutes by default...
HISTORY_STEPS = 30  # ...in thirty steps (ten seconds each)
EVALUATION_WINDOW = timedelta(hours=1)  # feedback arrives late; a minute would show nothing
MAX_EVENTS = 20
MAX_HISTORY_ROWS = 200_000  # bound one poll's work whatever the traffic


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

    One row per HTTP request (``record_index`` 0), so a batch of 50 records
    counts as one request, as in the live numbers.
    """
    since = now - timedelta(seconds=history_s)
    buckets = history_s // bucket_s
    table = predictions
    query = (
        select(table.c.ts, table.c.version, table.c.status)
        .where(
            table.c.model == model,
            table.c.record_index == 0,
            table.c.version.is_not(None),
            table.c.ts >= since,
        )
        .limit(MAX_HISTORY_ROWS)
    )
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * buckets)
    errors: dict[int, list[int]] = defaultdict(lambda: [0] * buckets)
    with engine.connect() as connection:
        for row in connection.execute(query):
            index = int((utc(row.ts) - since).total_seconds() // bucket_s)
            if not 0 <= index < buckets:
                continue
            version = int(row.version)
            counts[version][index] += 1
            if row.status >= 500:
                errors[version][index] += 1
    start = since.timestamp()
    return {
        "bucket_s": bucket_s,
        "starts": [start + i * bucket_s for i in range(buckets)],
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
    engine: Engine | None,
    policy: Any,
    shadow: Any,
    now: datetime,
    history_s: int,
) -> dict[str, Any]:
    def from_log(what: str, build: Callable[[Engine], Any]) -> Any:
        if engine is None:
            return {"error": f"{what} unavailable: no prediction log database"}
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
        "rollout": {"error": "rollout API unavailable in this build"}
        if policy is None
        else _section("rollout", lambda: rollout_view(policy, name)),
        "shadow": {"error": "shadow comparisons unavailable in this build"}
        if shadow is None
        else _section("shadow comparisons", lambda: shadow.summary(name)),
    }


def build_summary(app: FastAPI, history_s: int = HISTORY_S) -> dict[str, Any]:
    """The whole feed; runs in a worker thread (database reads)."""
    state = app.state
    now = datetime.now(UTC)
    registry = getattr(state, "registry", None)
    engine: Engine | None = getattr(state, "database", None)
    policy = getattr(state, "rollouts", None)
    predictor = getattr(state, "predictor", None)
    shadow = getattr(predictor, "shadow", None)
    recorder = getattr(state, "prediction_log", None)
    if recorder is not None:
        # this worker's queued rows first, so the page shows requests just answered
        _section("prediction log flush", lambda: recorder.flush(1.0))
    token = state.settings.admin_token
    described = registry.describe() if registry is not None else {}
    problems = registry.readiness() if registry is not None else ["registry not started"]
    models = [
        _model_view(name, described.get(name, {}), engine, policy, shadow, now, history_s)
        for name in state.settings.model_names()
    ]
    for view in models:  # versions the rollout names that cannot serve now (pinning/missing.py)
        rollout = view.get("rollout")
        if registry is not None and isinstance(rollout, dict) and "error" not in rollout:
            rollout["warnings"] = _section(
                "rollout warnings",
                lambda n=view["name"]: rollout_warnings(registry, policy, n, state.settings),
            )
    catalog = getattr(state, "apis", None)  # request APIs and pinned traffic (issue #24)
    for view in models:
        view["apis"] = (
            {"error": "API versions unavailable in this build"}
            if catalog is None
            else _section(
                "API versions",
                lambda n=view["name"]: api_panel(catalog, engine, n, now, LIVE_WINDOW_S),
            )
        )
    return {
        "generated_at": now.timestamp(),
        "live_window_s": LIVE_WINDOW_S,
        "ready": not problems,
        "problems": problems,
        "admin_enabled": bool(token is not None and token.get_secret_value()),
        "models": models,
    }


def record_rollout_gauges(app: FastAPI) -> None:
    """Set ``tierkit_rollout_stage`` and ``..._candidate_share`` from the shared rollout state.

    Called at each scrape rather than on each transition: the evaluator that
    promotes may be another worker (or replica), and the database is the one
    place that knows; gauges are "most recent" across workers.
    """
    policy = getattr(app.state, "rollouts", None)
    if policy is None:
        return
    metrics = app.state.metrics
    registry = getattr(app.state, "registry", None)
    for name in app.state.settings.model_names():
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
        if registry is not None:  # versions the rollout names that cannot serve (lasting)
            warnings = _section(
                "rollout warnings",
                lambda n=name: rollout_warnings(registry, policy, n, app.state.settings),
            )
            lasting = [w for w in warnings if w["lasting"]] if isinstance(warnings, list) else []
            metrics.rollout_missing.labels(name).set(len(lasting))
        if share is not None:
            metrics.rollout_share.labels(name, strategy).set(share)


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html")

    @router.get("/dashboard/api/summary", summary="What the dashboard shows, as JSON")
    async def summary(
        request: Request,
        model: str | None = Query(None, description="Only this model."),
        history_s: int = Query(
            HISTORY_S, ge=30, le=3600, description="Seconds of traffic history in the charts."
        ),
    ) -> Response:
        names = request.app.state.settings.model_names()
        if model is not None and model not in names:
            served = ", ".join(names) or "none"
            raise ApiError(
                404, f"model: unknown model {model!r} (served: {served})", "unknown_model"
            )
        body = await run_in_threadpool(build_summary, request.app, history_s)
        if model is not None:
            body["models"] = [m for m in body["models"] if m["name"] == model]
        return Response(
            orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return router


def install_dashboard(app: FastAPI) -> None:
    """The page, its feed, and its assets under /dashboard/static."""
    app.include_router(dashboard_router())
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
