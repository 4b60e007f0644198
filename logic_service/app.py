"""The logic tier's HTTP API, built by ``create_app(settings)``.

The factory wires the parts (graph client, model registry, routing policy,
metrics) into one FastAPI app; nothing lives at module level, so tests can
build several apps in one process and the multi-worker server builds one per
worker from the environment (``app_from_environment``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.admin_api import admin_router
from logic_service.api_admin import api_admin_router
from logic_service.api_errors import error_response, install_error_handlers
from logic_service.api_models import ERROR_RESPONSES, HealthResponse, ReadyResponse
from logic_service.api_routes import install_api_openapi, predict_router
from logic_service.api_versions import ApiCatalog
from logic_service.dashboard import install_dashboard, record_rollout_gauges
from logic_service.evaluation_api import router as evaluation_router
from logic_service.feedback_api import router as feedback_router
from logic_service.graph_client import create_graph_client
from logic_service.log_setup import configure_logging
from logic_service.metrics import Metrics
from logic_service.model_registry import ModelRegistry
from logic_service.pinned_predict import PinnedRoutes
from logic_service.pinning.keeper import start_keeper, stop_keeper
from logic_service.predict_service import PredictService
from logic_service.prediction_log import PredictionRecorder
from logic_service.request_body import json_response as _json
from logic_service.request_middleware import RequestMiddleware
from logic_service.rollout_policy import build_rollout_policy
from logic_service.security import CallerGuard, install_cors
from logic_service.settings import LogicSettings, load_settings
from logic_service.shadow import ShadowRunner
from logic_service.storage import open_database

log = logging.getLogger(__name__)


def create_app(settings: LogicSettings | None = None, configure_logs: bool = True) -> FastAPI:
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(
            settings.log.dir,
            settings.log.file,
            settings.log.level,
            settings.log.retention_days,
            settings.log.archive_dir,
            console=settings.log.console,
        )
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # grpc.aio objects belong to the running loop: made here, not at import.
        client = create_graph_client(
            settings, lambda model, rows: metrics.graph_batch_rows.labels(model).observe(rows)
        )
        registry = ModelRegistry(settings, client)
        app.state.registry = registry
        storage = settings.storage
        app.state.database = open_database(
            storage.database_url,
            storage.busy_timeout_ms,
            password_file=storage.database_password_file,
            migrate=storage.migrate_on_start,
        )
        recorder = PredictionRecorder(
            app.state.database,
            metrics,
            queue_size=storage.queue_size,
            batch_size=storage.batch_size,
            flush_interval_ms=storage.flush_interval_ms,
            write_retry_s=storage.write_retry_s,
        )
        app.state.prediction_log = recorder
        rollouts = build_rollout_policy(
            settings,
            app.state.database,
            lambda model: dict(registry.routable(model).labels),
            metrics,
        )
        app.state.rollouts = rollouts
        apis: ApiCatalog = app.state.apis
        pins = PinnedRoutes(settings, registry, apis)
        app.state.pins = pins
        # labels the rollout routes to, and those pinned callers named (issue #24)
        registry.label_names = lambda model: rollouts.label_targets(model) | pins.label_names(model)
        app.state.predictor = PredictService(settings, registry, client, rollouts, metrics)
        app.state.predictor.apis = apis
        app.state.predictor.shadow = ShadowRunner(metrics)
        if storage.record_predictions:
            app.state.predictor.prediction_log = recorder
        recorder.start()
        target = (
            settings.graph.grpc_address
            if settings.graph.protocol == "grpc"
            else (settings.graph.rest_url)
        )
        log.info(
            "logic tier starting: models %s, graph tier %s over %s",
            ", ".join(settings.model_names()),
            target,
            settings.graph.protocol,
        )
        await registry.start(wait_s=settings.startup_wait_s)
        await rollouts.start()
        # versions in use stay loaded in the graph tier (pinning/keeper.py)
        app.state.keeper = await start_keeper(settings, app.state.database, client, registry)
        await apis.start(registry, app.state.database)
        # With FastAPI, pydantic, scikit-learn and pandas imported a full collection
        # walks ~200,000 objects (144 ms measured): frozen objects are never scanned,
        # so collections see only what requests allocate (as graph_service does,
        # see graph_service/cpu/heap_freeze.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await apis.stop()
            await stop_keeper(app.state.keeper)
            await rollouts.stop()
            await registry.stop()
            await client.close()
            await asyncio.to_thread(recorder.stop)  # writes what is still queued
            app.state.database.dispose()

    app = FastAPI(
        title="tierkit logic tier",
        version="0.1.0",
        description=(
            "Validates raw business records, runs the feature processing of the model version "
            "that serves them and calls the graph tier (TF Serving or graph_service)."
        ),
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hooks look up the global tracer, meter and
        # logger providers on every request (about 6% of a request's CPU here) to
        # find them unconfigured; the tier measures itself with Prometheus (/metrics).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.apis = ApiCatalog(settings)  # its registry and database are attached at start
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    install_cors(app, settings.security)
    caller_guard = CallerGuard(settings.security)  # API key, then per-key rate limit
    app.include_router(feedback_router, dependencies=[Depends(caller_guard)])
    app.include_router(evaluation_router, dependencies=[Depends(caller_guard)])
    app.include_router(admin_router())
    app.include_router(api_admin_router())  # /admin/apis: retire an API version (issue #24)
    install_dashboard(app)  # /dashboard, its JSON feed and its own assets (issue #6)
    # predict per API version (/v1, /v2...), routed or pinned to a version or label (issue #24)
    app.include_router(predict_router(caller_guard))
    install_api_openapi(app)

    @app.get("/healthz", response_model=HealthResponse, summary="The process is alive")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=ReadyResponse,
        responses=ERROR_RESPONSES,
        summary="Graph tier reachable and every model has a servable version",
    )
    async def readyz(request: Request) -> Response:
        registry: ModelRegistry = request.app.state.registry
        reasons = registry.readiness()
        if reasons:
            return error_response(
                503,
                "not_ready",
                "; ".join(reasons),
                {"Retry-After": str(settings.graph.retry_after_s)},
            )
        return _json({"status": "ready", "models": registry.describe()})

    @app.get("/metrics", summary="Prometheus metrics (summed across workers)")
    async def metrics_endpoint(request: Request) -> Response:
        await run_in_threadpool(record_rollout_gauges, request.app)  # issue #6
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn workers: settings from $TIERKIT_LOGIC_CONFIG and TIERKIT_* vars."""
    return create_app(load_settings())
